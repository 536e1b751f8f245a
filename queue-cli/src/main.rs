fn main() -> std::process::ExitCode {
    queue_cli::main()
}
