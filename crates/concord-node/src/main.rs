//! `concord`: run a region node, talk to one, or try Concord out.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use concord_node::client::{Client, ClientOptions, Read};
use concord_node::config::{NodeConfig, WriteConcern};
use concord_node::node::Node;
use concord_node::{NodeError, pb};

/// mimalloc: the node allocates and frees a few objects per write on two
/// threads at once, where it is measurably faster than the system allocator
/// (`concord bench`, see the README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "concord",
    version,
    about = "Concord: active-active multi-region data"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args)]
struct Target {
    /// The node's gRPC address.
    #[arg(long, env = "CONCORD_ADDR", default_value = "http://127.0.0.1:7101")]
    addr: String,
    /// The CA certificate (PEM) to trust: the connection is TLS with it,
    /// plaintext without.
    #[arg(long, env = "CONCORD_CA")]
    ca: Option<std::path::PathBuf>,
    /// The name to verify the node's certificate for (default: the
    /// address's host).
    #[arg(long, env = "CONCORD_TLS_DOMAIN")]
    tls_domain: Option<String>,
    /// The client's bearer token.
    #[arg(long, env = "CONCORD_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Target {
    async fn connect(&self) -> Result<Client, NodeError> {
        let mut options = ClientOptions::default();
        if let Some(ca) = &self.ca {
            options = options.ca_file(ca)?;
        }
        if let Some(d) = &self.tls_domain {
            options = options.domain(d.clone());
        }
        if let Some(t) = &self.token {
            options = options.token(t.clone());
        }
        Client::connect_with(&self.addr, &options).await
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a region node.
    Node {
        /// The node's TOML configuration.
        #[arg(long)]
        config: std::path::PathBuf,
    },
    /// Three regions in one process: conflicting writes under every policy,
    /// and convergence shown.
    Demo,
    /// Start nodes on loopback, drive writes, print throughput and lag.
    Bench(concord_node::bench::BenchArgs),
    /// Make a CA and a certificate per region (for local use).
    Certs {
        /// Where to write ca.pem, ca.key, REGION.pem and REGION.key.
        #[arg(long)]
        out: std::path::PathBuf,
        /// The regions, comma-separated (e.g. us-east,eu-west,ap-south).
        #[arg(long, value_delimiter = ',', required = true)]
        regions: Vec<String>,
        /// More names or IPs every region certificate is valid for,
        /// comma-separated (loopback is always in).
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
    },
    /// Client tokens: make one, or hash one for `[[clients]]`.
    Token {
        #[command(subcommand)]
        action: TokenCmd,
    },
    /// A node's channels, lag and RPO report.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Set a value.
    Put {
        #[command(flatten)]
        target: Target,
        /// Write concern: local, all or regions:N (default: the node's).
        #[arg(long)]
        concern: Option<WriteConcern>,
        collection: String,
        key: String,
        value: String,
    },
    /// Read a value.
    Get {
        #[command(flatten)]
        target: Target,
        /// Wait until this write (ORIGIN#SEQ, from put) is applied here.
        #[arg(long)]
        after: Option<String>,
        collection: String,
        key: String,
    },
    /// Add to a counter (negative subtracts).
    Incr {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        concern: Option<WriteConcern>,
        collection: String,
        key: String,
        #[arg(default_value_t = 1, allow_negative_numbers = true)]
        delta: i64,
    },
    /// Delete a value.
    Del {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        concern: Option<WriteConcern>,
        collection: String,
        key: String,
    },
    /// The conflict queue.
    Conflicts {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        action: ConflictCmd,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Print a new random token and its sha256 (for `token_sha256`).
    New,
    /// Print the sha256 of a token (read from stdin if not given).
    Hash {
        /// The token.
        token: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConflictCmd {
    /// Open items (and closed ones with --all).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Stream items as they open and close.
    Watch,
    /// Resolve an item with a value, or delete the entity.
    Resolve {
        id: u64,
        /// The resolved value.
        value: Option<String>,
        /// Resolve by deleting the entity.
        #[arg(long, conflicts_with = "value")]
        delete: bool,
    },
}

fn concern_pb(c: Option<WriteConcern>) -> Option<pb::WriteConcern> {
    use pb::write_concern::Level;
    c.map(|c| match c {
        WriteConcern::Local => pb::WriteConcern {
            level: Level::Local.into(),
            ..Default::default()
        },
        WriteConcern::All => pb::WriteConcern {
            level: Level::All.into(),
            ..Default::default()
        },
        WriteConcern::Regions(n) => pb::WriteConcern {
            level: Level::Regions.into(),
            regions: n,
            ..Default::default()
        },
    })
}

fn token(t: &pb::WriteRef) -> String {
    format!("{}#{}", t.origin, t.seq)
}

fn parse_token(s: &str) -> Result<pb::WriteRef, NodeError> {
    let bad = || NodeError::Malformed {
        field: "--after".into(),
        reason: format!("{s:?} is not ORIGIN#SEQ"),
    };
    let (o, q) = s.split_once('#').ok_or_else(bad)?;
    Ok(pb::WriteRef {
        origin: o.parse().map_err(|_| bad())?,
        seq: q.parse().map_err(|_| bad())?,
    })
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn print_item(it: &pb::ConflictItem) {
    println!(
        "#{} {}/{} {} ({}): {}",
        it.id,
        it.collection,
        text(&it.key),
        it.reason,
        it.status,
        it.detail
    );
    for v in &it.versions {
        let w = v.write.map_or_else(String::new, |w| token(&w));
        match &v.value {
            Some(x) => println!("    {:?} from {} (write {w})", text(x), v.origin),
            None => println!("    (deleted) from {} (write {w})", v.origin),
        }
    }
}

async fn run(cmd: Cmd) -> Result<(), NodeError> {
    match cmd {
        Cmd::Node { config } => {
            let (config, testing) = NodeConfig::load_with_testing(&config)?;
            let node = Node::start_with_testing(config, testing).await?;
            let driver = node.driver().clone();
            tokio::select! {
                () = wait_for_signal() => {}
                () = driver.stopped() => {
                    // The engine stopped on its own: its storage failed.
                    let _ = node.shutdown().await;
                    return Err(NodeError::Stopped);
                }
            }
            tracing::info!("stopping: flushing");
            node.shutdown().await?;
            tracing::info!("stopped");
        }
        Cmd::Demo => {
            let mut out = std::io::stdout();
            concord_node::demo::run(&mut out).await?;
        }
        Cmd::Bench(args) => {
            let report = concord_node::bench::run(&args).await?;
            if args.json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
        }
        Cmd::Certs {
            out,
            regions,
            hosts,
        } => {
            let g = concord_node::certs::generate(&out, &regions, &hosts)?;
            println!("CA:      {} (key {})", g.ca.display(), g.ca_key.display());
            for r in &g.regions {
                println!(
                    "{:<8} {} (key {})",
                    r.region,
                    r.cert.display(),
                    r.key.display()
                );
            }
            println!(
                "Each region's certificate names it as REGION.{} (and loopback); in each node's config:",
                concord_node::certs::REGION_DOMAIN
            );
            println!(
                "  [tls]\n  ca = \"{}\"\n  cert = \"<out>/REGION.pem\"\n  key = \"<out>/REGION.key\"",
                g.ca.display()
            );
        }
        Cmd::Token { action } => match action {
            TokenCmd::New => {
                let token = concord_node::auth::generate_token()?;
                println!("token:        {token}");
                println!("token_sha256: {}", concord_node::auth::hash_token(&token));
            }
            TokenCmd::Hash { token } => {
                let token = match token {
                    Some(t) => t,
                    None => {
                        let mut line = String::new();
                        std::io::stdin()
                            .read_line(&mut line)
                            .map_err(|source| NodeError::Io {
                                path: "(stdin)".into(),
                                source,
                            })?;
                        line.trim_end_matches(['\r', '\n']).to_owned()
                    }
                };
                println!("{}", concord_node::auth::hash_token(&token));
            }
        },
        Cmd::Status { target } => {
            let s = target.connect().await?.status().await?;
            println!("region {} (id {})", s.region, s.region_id);
            println!(
                "{:<12} {:<11} {:>9} {:>12} {:>10} {:>10} {:>10} {:>10}",
                "peer", "status", "conn", "writes", "lag s", "max 1m s", "max 1h s", "max s"
            );
            for c in &s.channels {
                println!(
                    "{:<12} {:<11} {:>9} {:>12} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
                    c.region,
                    c.status,
                    if c.connected { "up" } else { "down" },
                    c.writes_behind,
                    c.seconds_behind,
                    c.max_1m_seconds,
                    c.max_1h_seconds,
                    c.max_ever_seconds
                );
            }
            println!("RPO (what a failover of this node would lose now):");
            for r in &s.rpo {
                println!(
                    "  from {:<12} {} writes not applied, oldest {:.3} s",
                    r.origin, r.writes_not_applied, r.oldest_age_seconds
                );
            }
            if let Some(r) = &s.rejections {
                println!(
                    "refused requests: {} unauthenticated, {} permission denied, {} invalid, {} over a limit, {} TLS handshakes, {} peer streams",
                    r.unauthenticated,
                    r.permission_denied,
                    r.invalid_argument,
                    r.resource_exhausted,
                    r.tls_handshakes,
                    r.peer_streams
                );
            }
            println!(
                "writes: {} local, {} replicated in; {} open conflicts, {} LWW losers, {} refused, {} withheld",
                s.local_writes,
                s.remote_applied,
                s.open_conflicts,
                s.lww_losers,
                s.refused_writes,
                s.withheld_writes
            );
            for f in &s.failovers {
                println!(
                    "failover {} -> {} ({}), epoch {}: {} writes / {:.3} s at risk",
                    f.from, f.to, f.reason, f.epoch, f.at_risk_writes, f.at_risk_seconds
                );
            }
        }
        Cmd::Put {
            target,
            concern,
            collection,
            key,
            value,
        } => {
            let mut c = target.connect().await?.with_concern(concern_pb(concern));
            let t = c.put(&collection, key.as_bytes(), value.as_bytes()).await?;
            println!("{}", token(&t));
        }
        Cmd::Get {
            target,
            after,
            collection,
            key,
        } => {
            let mut c = target.connect().await?;
            let read = match after {
                Some(a) => {
                    c.get_after(&collection, key.as_bytes(), parse_token(&a)?)
                        .await?
                }
                None => c.get(&collection, key.as_bytes()).await?,
            };
            match read {
                Read::Missing => println!("(missing)"),
                Read::Value { value, version } => {
                    println!("{}", text(&value));
                    eprintln!("  written in {}", version.origin);
                }
                Read::Siblings { versions, .. } => {
                    for v in versions {
                        println!("{}", text(v.value.as_deref().unwrap_or_default()));
                        eprintln!("  from {}", v.origin);
                    }
                }
                Read::Counter(n) => println!("{n}"),
            }
        }
        Cmd::Incr {
            target,
            concern,
            collection,
            key,
            delta,
        } => {
            let mut c = target.connect().await?.with_concern(concern_pb(concern));
            let t = c.increment(&collection, key.as_bytes(), delta).await?;
            println!("{}", token(&t));
        }
        Cmd::Del {
            target,
            concern,
            collection,
            key,
        } => {
            let mut c = target.connect().await?.with_concern(concern_pb(concern));
            let t = c.delete(&collection, key.as_bytes()).await?;
            println!("{}", token(&t));
        }
        Cmd::Conflicts { target, action } => {
            let mut c = target.connect().await?;
            match action {
                ConflictCmd::List { all } => {
                    let items = c.conflicts(all).await?;
                    if items.is_empty() {
                        println!("(no conflicts)");
                    }
                    for it in &items {
                        print_item(it);
                    }
                }
                ConflictCmd::Watch => {
                    let mut stream = c
                        .raw()
                        .watch_conflicts(pb::WatchConflictsRequest { after: 0 })
                        .await?
                        .into_inner();
                    while let Some(it) = stream.message().await? {
                        print_item(&it);
                    }
                }
                ConflictCmd::Resolve { id, value, delete } => {
                    let value = if delete {
                        None
                    } else {
                        Some(value.unwrap_or_default().into_bytes())
                    };
                    let t = c.resolve(id, value).await?;
                    println!("{}", token(&t));
                }
            }
        }
    }
    Ok(())
}

/// Waits for SIGTERM or Ctrl-C.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Cmd::Node { .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("concord: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("concord: {e}");
            ExitCode::FAILURE
        }
    }
}
