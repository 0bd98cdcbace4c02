fn main() -> std::process::ExitCode {
    bgrun::main(None)
}
