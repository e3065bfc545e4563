//! `ktrdr`: the command-line client of the ktrdr gateway. Everything lives in the library
//! (`ktrdr_cli`); this only parses the command line and turns the outcome into an exit code.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    ktrdr_cli::run(ktrdr_cli::Cli::from_env()).await.into()
}
