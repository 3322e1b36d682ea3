//! `dsmon`: command line entry point. Parses arguments, loads the configuration and hands over to the
//! core (`collect`, `serve`, `check`, `export`) or, in the desktop build without a command, the window.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::run(args)
}
