//! The `bintrail` binary: parse the command line, set up logging, run one command, map its
//! outcome to an exit status (0 ok, 1 runtime error, 2 usage error, 3 definite error).

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

// Rows are decoded on the reader's thread and dropped on the writer's: glibc's allocator pays a
// locked cross-thread free for each, about a third of the decode time (perf, --dry-run).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that go to stdout with status 0.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    bintrail::service::init_logging(cli.log_format.into());
    let outcome = match cli.command {
        cli::Command::Stream(cmd) => commands::stream::run(cmd),
        cli::Command::Init(cmd) => commands::init::run(cmd),
        cli::Command::Status(cmd) => commands::status::run(cmd),
        cli::Command::Query(cmd) => commands::query::run(cmd),
        cli::Command::Recover(cmd) => commands::recover::run(cmd),
        cli::Command::Reconstruct(cmd) => commands::reconstruct::run(cmd),
        cli::Command::Index(cmd) => commands::index::run(cmd),
        cli::Command::Rotate(cmd) => commands::rotate::run(cmd),
        cli::Command::Mask(cmd) => commands::mask::run(cmd),
        cli::Command::Service(cmd) => commands::service::run(cmd),
        cli::Command::Archive(cmd) => commands::archive::run(cmd),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bintrail: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
