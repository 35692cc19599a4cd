//! The `keel` binary: `keel server` runs a node; every other subcommand is
//! an operator's client of the admin API.

use std::process::ExitCode;

use clap::Parser;
use keel_node::cli::{Cli, Command};
use keel_node::client;
use keel_node::lifecycle::retire;

fn main() -> ExitCode {
    let cli = Cli::parse();
    keel_node::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => {
                // Everything a node writes (log, state, snapshots, the CA
                // key among them) is for its own user only.
                // SAFETY: umask has no memory effects; it only sets the
                // process's file creation mask.
                unsafe { libc::umask(0o077) };
                let ran = keel_node::lifecycle::start::run(*args).await;
                match ran {
                    Err(e) if e.downcast_ref::<retire::Retired>().is_some() => {
                        eprintln!("keel: {e:#}; starting again as a new incarnation");
                        let failed = retire::restart_in_place();
                        Err(format!("cannot start again: {failed}"))
                    }
                    Err(e) if e.downcast_ref::<retire::Decommissioned>().is_some() => {
                        // A decommission is a clean, final stop.
                        eprintln!("keel: {e:#}; stopped");
                        Ok(())
                    }
                    other => other.map_err(|e| format!("{e:#}")),
                }
            }
            Command::Health(args) => client::health(&args).await.map_err(|e| e.to_string()),
            Command::Status(args) => client::status(&args).await.map_err(|e| e.to_string()),
            Command::Cluster { client: args, op } => client::cluster::run(&args, &op)
                .await
                .map_err(|e| e.to_string()),
            Command::Lease { client: args, op } => client::lease::run(&args, &op)
                .await
                .map_err(|e| e.to_string()),
            Command::Account { client: args, op } => client::account::run(&args, &op)
                .await
                .map_err(|e| e.to_string()),
            Command::Token { client: args, op } => client::token::run(&args, &op)
                .await
                .map_err(|e| e.to_string()),
            Command::Cert { client: args, op } => client::cert::run(&args, &op)
                .await
                .map_err(|e| e.to_string()),
            Command::Audit { op } => client::audit::run(&op),
            Command::Operator { client: args, op } => client::operator(&args, &op)
                .await
                .map_err(|e| e.to_string()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
