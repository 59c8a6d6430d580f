//! `xb-cli`: the thin command-line front end of xb. Each subcommand lives in
//! its own module and only translates options into library calls.

mod prepare;

use clap::{Parser, Subcommand};

/// Hot physical backups of MySQL-family servers.
#[derive(Debug, Parser)]
#[command(name = "xb-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a backup restorable by running the server's own crash recovery on it.
    Prepare(prepare::PrepareArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("XB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Prepare(args) => prepare::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xb: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
