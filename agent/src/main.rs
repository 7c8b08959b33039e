//! The `streamswitch` command: parses the command line and hands over to
//! [`streamswitch::app::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use streamswitch::app::{ConfigSource, Stopped};
use streamswitch::config::Config;

#[derive(Parser)]
#[command(
    name = "streamswitch",
    version,
    about = "StreamSwitch Edge streaming agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent.
    Run {
        #[arg(long, default_value = "config/default.toml")]
        config: PathBuf,
    },
    /// Check a configuration file and exit: 0 when it is valid.
    CheckConfig { path: PathBuf },
    /// List the cameras, encoders and microphones this board offers.
    Devices {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Devices { json } => {
            let inventory = streamswitch::devices::scan();
            if json {
                match serde_json::to_string_pretty(&inventory) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", streamswitch::devices::render(&inventory));
            }
            ExitCode::SUCCESS
        }
        Command::CheckConfig { path } => match Config::load(&path) {
            Ok(c) => {
                println!("{}: ok ({} streams)", path.display(), c.streams.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
                )
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .init();
            let text = match std::fs::read_to_string(&config) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {}: cannot read: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            let parsed = match Config::parse(&text, &config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            run(
                parsed,
                ConfigSource {
                    path: Some(config),
                    text,
                },
            )
        }
    }
}

fn run(config: Config, source: ConfigSource) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("streamswitch")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stopped = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let (reload_tx, reload_rx) = mpsc::channel(1);
        tokio::spawn(handle_signals(shutdown.clone(), reload_tx));
        streamswitch::app::run(config, source, reload_rx, shutdown).await
    });
    // Every task, thread and socket of this run ends here.
    drop(runtime);
    match stopped {
        Ok(Stopped::Exit) => ExitCode::SUCCESS,
        Ok(Stopped::Restart) => restart(),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Replaces this process with a fresh start of the same binary and
/// arguments (same pid: a service manager sees no exit). Recordings are
/// closed and sockets released by then.
fn restart() -> ExitCode {
    use std::os::unix::process::CommandExt;
    tracing::info!("restarting");
    let error = std::process::Command::new("/proc/self/exe")
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!("error: cannot restart: {error}");
    ExitCode::FAILURE
}

/// SIGTERM and SIGINT stop the agent; SIGHUP asks for a config reload.
async fn handle_signals(shutdown: CancellationToken, reload: mpsc::Sender<()>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hup.recv() => {
                // A reload already pending covers this one too.
                let _ = reload.try_send(());
            }
        }
    }
    shutdown.cancel();
}
