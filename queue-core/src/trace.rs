//! Trace context kept with a job: the W3C `traceparent` of the span that enqueued it, so that
//! the worker's span for the job continues the same trace. Reading the active span's context
//! needs OpenTelemetry (the `otel` feature); without it, only an explicit
//! [`NewJob::trace_parent`](crate::NewJob::trace_parent) is kept.

/// The active span's W3C `traceparent`, if an OpenTelemetry span is active (`otel` feature;
/// always `None` without it).
#[cfg(feature = "otel")]
pub fn current_trace_parent() -> Option<String> {
    use opentelemetry::{propagation::TextMapPropagator, trace::TraceContextExt};
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    opentelemetry_sdk::propagation::TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// The active span's W3C `traceparent`: always `None` without the `otel` feature.
#[cfg(not(feature = "otel"))]
pub fn current_trace_parent() -> Option<String> {
    None
}

/// The OpenTelemetry context a `traceparent` names (an empty one if it does not parse).
#[cfg(feature = "otel")]
pub fn context_of(traceparent: &str) -> opentelemetry::Context {
    use opentelemetry::propagation::TextMapPropagator;

    let carrier = std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier)
}
