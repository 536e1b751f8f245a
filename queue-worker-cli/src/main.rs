use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = queue_worker_cli::Args::parse();
    queue_worker_cli::init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("queue-worker: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(queue_worker_cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("queue-worker: {error:#}");
            ExitCode::from(2)
        }
    }
}
