fn main() {
    eprintln!("queue-worker: not built yet");
    std::process::exit(2);
}
