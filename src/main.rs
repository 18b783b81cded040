//! The `whipstream` binary: parses the command line and hands it to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    whipstream::cli::run(whipstream::cli::Cli::parse())
}
