fn main() {
    eprintln!("queue-cli: not built yet");
    std::process::exit(2);
}
