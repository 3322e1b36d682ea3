//! The command line: argument definitions, exit codes and the tables printed for people.
//!
//! Exit codes: 0 success; 1 a runtime failure (the store cannot be written, some node unreachable
//! for `check`); 2 bad input (arguments, configuration, export range).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::watch;

use dsmon::config::{self, Config};
use dsmon::core::{format_ts, tick_at_or_before, unix_now, Metrics, Row};
use dsmon::engine::{Collector, Discovery};
use dsmon::store::export::{self, ExportError, Format};
use dsmon::store::{
    AlertStore, AuthStore, PgDatabase, PgOptions, RowQuery, SampleStore, SharedSamples,
    SqliteAlertStore, SqliteAuthStore, SqliteStore, StoreError,
};

#[derive(Parser, Debug)]
#[command(
    name = "dsmon",
    version,
    about = "Distributed systems monitor over Netdata agents"
)]
pub struct Cli {
    /// Configuration file [default: ./dsmon.toml, then the platform config dir's dsmon/dsmon.toml]
    #[arg(long, global = true, env = "DSMON_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    /// Desktop app: open only the compact live-view window.
    #[arg(long)]
    live: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Log one tick (the newest wall-clock multiple of log_interval) for every node, print a summary.
    Collect {
        /// Run a single tick and exit (the continuous loop is `dsmon serve`).
        #[arg(long, required = true)]
        once: bool,
    },
    /// Log every node at each log_interval, poll them live and serve the UI and API, until SIGINT/SIGTERM.
    Serve,
    /// Add rows from a CSV file in the export's format (rows already present are left alone).
    Import {
        /// The CSV file (`-` for standard input).
        file: PathBuf,
    },
    /// Validate the configuration and probe every node once.
    Check,
    /// Print the netdata.conf [web] lines that let only this monitor (and each node itself) use the agents.
    NetdataAcl {
        /// The monitor's address as the agents see it (repeat for more) [default: the address this
        /// host sends from to reach each node].
        #[arg(long = "monitor", value_name = "ADDR")]
        monitors: Vec<std::net::IpAddr>,
    },
    /// Copy the SQLite history ([storage] path: rows and roll-ups, users, sessions, audit, alerts)
    /// into a PostgreSQL database; running it again copies nothing twice.
    Migrate {
        /// The PostgreSQL database, postgres://user@host[:port]/database (no password in it).
        #[arg(long, value_name = "URL")]
        to: String,
        /// A file holding the database password.
        #[arg(long, value_name = "PATH")]
        password_file: Option<PathBuf>,
        /// PEM certificate authorities: connect with TLS and check the server against them.
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
    },
    /// Print logged rows as CSV or JSON.
    Export {
        /// Start (inclusive): RFC 3339, a date, `now`, or relative such as -24h, -7d.
        #[arg(long, allow_hyphen_values = true)]
        from: String,
        /// End (inclusive), same forms as --from.
        #[arg(long, allow_hyphen_values = true, default_value = "now")]
        to: String,
        /// Only this node (repeat for more).
        #[arg(long = "node", value_name = "NAME")]
        nodes: Vec<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Csv)]
        format: OutputFormat,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OutputFormat {
    Csv,
    Json,
}

impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Csv => Format::Csv,
            OutputFormat::Json => Format::Json,
        }
    }
}

const EXIT_RUNTIME: u8 = 1;
const EXIT_USAGE: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    let Some(command) = cli.command else {
        return no_command(cli.config, cli.live);
    };
    let default_level = match command {
        Command::Serve => "info",
        _ => "warn",
    };
    init_tracing(default_level);
    dsmon::raise_fd_limit();
    // Before the runtime starts its threads.
    dsmon::limit_malloc_arenas();

    let cfg = match config::locate_and_load(cli.config.as_deref()) {
        Ok(c) => c,
        // Reading rows needs only the database: without any config file, use the default one.
        Err(config::ConfigError::NotFound { .. })
            if matches!(command, Command::Export { .. } | Command::Migrate { .. }) =>
        {
            Config::defaults()
        }
        Err(e) => return fail(EXIT_USAGE, &e),
    };
    if !matches!(command, Command::Export { .. }) {
        for w in cfg.warnings() {
            tracing::warn!("{w}");
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_RUNTIME, &e),
    };
    match command {
        Command::Collect { .. } => rt.block_on(collect_once(&cfg)),
        Command::Serve => rt.block_on(serve(&cfg)),
        Command::Check => rt.block_on(check(&cfg)),
        Command::Export {
            from,
            to,
            nodes,
            format,
        } => export(&cfg, &from, &to, nodes, format.into()),
        Command::Import { file } => import(&cfg, &file),
        Command::Migrate {
            to,
            password_file,
            ca_file,
        } => migrate(&cfg, &to, password_file.as_deref(), ca_file),
        Command::NetdataAcl { monitors } => rt.block_on(netdata_acl(&cfg, monitors)),
    }
}

#[cfg(feature = "gui")]
fn no_command(config: Option<PathBuf>, live_only: bool) -> ExitCode {
    init_tracing("info");
    match dsmon::desktop::run(dsmon::desktop::Options { config, live_only }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_RUNTIME, &e),
    }
}

#[cfg(not(feature = "gui"))]
fn no_command(_config: Option<PathBuf>, _live_only: bool) -> ExitCode {
    use clap::CommandFactory;
    let _ = Cli::command().print_help();
    eprintln!(
        "\nthis is the headless build: give a command (collect --once, serve, check, export)"
    );
    ExitCode::from(EXIT_USAGE)
}

fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DSMON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_target(false)
        .try_init();
}

fn fail(code: u8, e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("dsmon: {e}");
    ExitCode::from(code)
}

/// Where the data lives: the SQLite file (the embedded default) or a PostgreSQL database
/// (`[storage] url`), whose connection pool the stores share.
enum Storage {
    Sqlite(PathBuf),
    Postgres(PgDatabase),
}

impl Storage {
    /// Opens the configured storage; PostgreSQL is connected to and its schema brought up to date
    /// (a newer schema is refused).
    fn open(cfg: &Config) -> Result<Self, StoreError> {
        match &cfg.storage.postgres {
            None => Ok(Storage::Sqlite(cfg.storage.path.clone())),
            Some(pg) => {
                let db = PgDatabase::connect(&PgOptions {
                    url: pg.url.clone(),
                    password: pg.password.as_ref().map(|p| p.expose().to_string()),
                    ca_file: pg.ca_file.clone(),
                    pool_size: pg.pool_size,
                })?;
                tracing::info!(database = %db.label(), "PostgreSQL storage");
                Ok(Storage::Postgres(db))
            }
        }
    }

    /// The database for messages (a PostgreSQL URL without any password).
    fn describe(&self) -> String {
        match self {
            Storage::Sqlite(p) => p.display().to_string(),
            Storage::Postgres(db) => db.label().to_string(),
        }
    }

    /// A sample store (SQLite: a connection of its own; created and migrated if needed).
    fn samples(&self) -> Result<SharedSamples, StoreError> {
        Ok(match self {
            Storage::Sqlite(p) => Arc::new(Mutex::new(SqliteStore::open(p)?)),
            Storage::Postgres(db) => Arc::new(Mutex::new(db.samples())),
        })
    }

    fn auth(&self) -> Result<Arc<dyn AuthStore>, StoreError> {
        Ok(match self {
            Storage::Sqlite(p) => Arc::new(SqliteAuthStore::open(p)?),
            Storage::Postgres(db) => Arc::new(db.auth()),
        })
    }

    fn alerts(&self) -> Result<Arc<dyn AlertStore>, StoreError> {
        Ok(match self {
            Storage::Sqlite(p) => Arc::new(SqliteAlertStore::open(p)?),
            Storage::Postgres(db) => Arc::new(db.alerts()),
        })
    }
}

/// The collector (first: a bad CA file is a configuration error, reported before any file is
/// created), the source of its node set (`[[nodes]]` and the children of `[[parents]]`, not read
/// yet), the storage and its opened sample store.
fn collector_and_store(
    cfg: &Config,
) -> Result<(Arc<Collector>, Arc<Discovery>, Storage, SharedSamples), ExitCode> {
    let (collector, discovery) = collector_and_discovery(cfg)?;
    let storage = Storage::open(cfg).map_err(|e| fail(EXIT_RUNTIME, &e))?;
    let store = storage.samples().map_err(|e| fail(EXIT_RUNTIME, &e))?;
    Ok((collector, discovery, storage, store))
}

fn collector_and_discovery(cfg: &Config) -> Result<(Arc<Collector>, Arc<Discovery>), ExitCode> {
    let collector = Arc::new(Collector::new(cfg).map_err(|e| fail(EXIT_USAGE, &e))?);
    let discovery = Discovery::new(Arc::clone(&collector), &cfg.nodes, &cfg.parents)
        .map_err(|e| fail(EXIT_USAGE, &e))?;
    Ok((collector, Arc::new(discovery)))
}

async fn collect_once(cfg: &Config) -> ExitCode {
    let (collector, discovery, storage, store) = match collector_and_store(cfg) {
        Ok(parts) => parts,
        Err(code) => return code,
    };
    if !cfg.parents.is_empty() {
        if let Err(e) = discovery.refresh().await {
            return fail(EXIT_RUNTIME, &e);
        }
    }
    let ts = tick_at_or_before(unix_now(), cfg.collector.log_interval.as_secs());
    let report = match collector.log_tick(&store, ts).await {
        Ok(r) => r,
        Err(e) => return fail(EXIT_RUNTIME, &e),
    };
    // Show what is stored for the tick (also rows logged by an earlier run).
    let stored = {
        let store = Arc::clone(&store);
        tokio::task::spawn_blocking(move || {
            match store.lock().map_err(|_| "store lock poisoned".to_string()) {
                Ok(s) => s.rows_at(ts).map_err(|e| e.to_string()),
                Err(e) => Err(e),
            }
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
    };
    let rows = match stored {
        Ok(rows) => rows,
        Err(e) => return fail(EXIT_RUNTIME, &e),
    };
    let configured = collector.node_names();
    let mut out = io::stdout().lock();
    let res = (|| -> io::Result<()> {
        writeln!(
            out,
            "tick {} (average over the {} before it) -> {}",
            format_ts(ts),
            humantime::format_duration(cfg.collector.log_interval),
            storage.describe()
        )?;
        print_rows(
            &mut out,
            configured
                .iter()
                .filter_map(|n| rows.iter().find(|r| r.node == *n)),
        )?;
        let down = configured
            .iter()
            .filter(|n| rows.iter().any(|r| r.node == **n && r.metrics.is_none()))
            .count();
        writeln!(
            out,
            "{} rows written, {} already logged for this tick, {} of {} nodes down, {} ms",
            report.written,
            report.already_logged,
            down,
            configured.len(),
            report.elapsed.as_millis()
        )?;
        let not_yet: Vec<&str> = report
            .readings
            .iter()
            .filter(|r| r.is_not_yet())
            .map(|r| r.node.as_str())
            .collect();
        if !not_yet.is_empty() {
            writeln!(
                out,
                "not monitored yet (their agents' data starts after this interval; no row): {}",
                not_yet.join(", ")
            )?;
        }
        Ok(())
    })();
    match res {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => fail(EXIT_RUNTIME, &e),
        _ => ExitCode::SUCCESS,
    }
}

async fn serve(cfg: &Config) -> ExitCode {
    let (collector, discovery, storage, store) = match collector_and_store(cfg) {
        Ok(parts) => parts,
        Err(code) => return code,
    };
    let reader = match storage.samples() {
        Ok(s) => s,
        Err(e) => return fail(EXIT_RUNTIME, &e),
    };
    if cfg.auth.as_ref().is_some_and(|a| a.redirect_url.is_none()) {
        return fail(
            EXIT_USAGE,
            &format!(
                "{}: auth.redirect_url: dsmon serve needs its public sign-in address, e.g. \"https://monitor.example.com/auth/callback\"",
                cfg.path.display()
            ),
        );
    }
    let auth = match &cfg.auth {
        Some(a) => match storage
            .auth()
            .map_err(|e| e.to_string())
            .and_then(|db| dsmon::auth::Auth::new(a.clone(), db).map_err(|e| e.to_string()))
        {
            Ok(a) => {
                tracing::info!(issuer = %a.config().issuer, "sign-in required (OpenID Connect)");
                Some(Arc::new(a))
            }
            Err(e) => return fail(EXIT_RUNTIME, &e),
        },
        None => {
            tracing::warn!(
                "no [auth] in the configuration: dsmon is a single-user local tool on loopback and every request is treated as Admin"
            );
            None
        }
    };
    let bound = match dsmon::server::bind(&cfg.server).await {
        Ok(b) => b,
        Err(e) => return fail(EXIT_RUNTIME, &e),
    };
    let metrics_bound = match cfg.server.metrics_listen {
        Some(addr) => match dsmon::server::bind_metrics(addr).await {
            Ok(b) => Some(b),
            Err(e) => return fail(EXIT_RUNTIME, &e),
        },
        None => None,
    };
    collector.leave_state_to_live_poller();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    {
        let stop_tx = Arc::clone(&stop_tx);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!(
                "stopping: finishing the tick in progress (signal again to stop at once)"
            );
            let _ = stop_tx.send(true);
            wait_for_signal().await;
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        });
    }
    tracing::info!(
        nodes = cfg.nodes.len(),
        log_interval = %humantime::format_duration(cfg.collector.log_interval),
        live_interval = %humantime::format_duration(cfg.collector.live_interval),
        database = %storage.describe(),
        listen = %cfg.server.listen,
        "dsmon serve started"
    );
    if !cfg.parents.is_empty() {
        tracing::info!(
            parents = cfg.parents.len(),
            "children of [[parents]] are discovered and followed"
        );
    }
    Arc::clone(&discovery).spawn(stop_rx.clone());
    let alerts = match start_alerts(cfg, &storage, &reader) {
        Ok(a) => a,
        Err(e) => return fail(EXIT_RUNTIME, &e),
    };
    // On PostgreSQL several instances share the database: the one holding the leader lock logs
    // the ticks and sends the notifications; every instance serves the UI and API.
    let leader = match &storage {
        Storage::Postgres(db) => Some(dsmon::store::PgLeaderLock::new(db)),
        Storage::Sqlite(_) => None,
    };
    let leader_alerts = Some(Arc::clone(&alerts));
    if leader.is_none() {
        tokio::spawn(Arc::clone(&alerts).run(collector.subscribe(), stop_rx.clone()));
    }
    tokio::spawn(reload_on_hangup(
        cfg.path.clone(),
        discovery,
        Arc::clone(&alerts),
    ));
    let live = dsmon::engine::live::spawn(Arc::clone(&collector), stop_rx.clone());
    let mut app = dsmon::app::App::new(
        live,
        reader,
        cfg.collector.log_interval.as_secs() as i64,
        auth,
    );
    app = app.with_alerts(alerts);
    let engine = Arc::clone(&collector);
    app = app.with_dashboards(Arc::new(move |name: &str| engine.dashboard_url(name)));
    let mut state = dsmon::server::AppState::new(app, stop_rx.clone())
        .with_trusted_proxies(&cfg.server.trusted_proxies)
        .with_metrics_token(cfg.server.metrics_token.clone());
    if let dsmon::config::Listen::Tcp(addr) = &cfg.server.listen {
        state = state.on_port(addr.port());
    }
    let logger = {
        let collector = Arc::clone(&collector);
        let stop = stop_rx.clone();
        let interval = cfg.collector.log_interval.as_secs().max(1);
        tokio::spawn(async move {
            match leader {
                None => collector.run_logger(store, stop).await,
                Some(lock) => lead(lock, collector, store, leader_alerts, interval, stop).await,
            }
        })
    };
    tokio::spawn(dsmon::release_free_heap(
        std::time::Duration::from_secs(60),
        stop_rx.clone(),
    ));
    let metrics_http = metrics_bound.map(|b| {
        tracing::info!(
            listen = %format!("http://{}/metrics", b.addr()),
            "metrics listener started"
        );
        tokio::spawn(dsmon::server::serve_metrics(b, state.clone()))
    });
    let http = dsmon::server::serve(bound, state).await;
    if let Err(e) = &http {
        tracing::error!(error = %e, "HTTP server failed: stopping");
        let _ = stop_tx.send(true);
    }
    // The logger finishes a tick in progress before it returns.
    let _ = logger.await;
    if let Some(m) = metrics_http {
        let _ = m.await;
    }
    tracing::info!("stopped");
    match http {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_RUNTIME, &e),
    }
}

/// How often an instance on PostgreSQL tries to become the leader, and the leader checks that it
/// still is: a dead leader is replaced within this plus the server noticing its end.
const LEADER_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// At most this many missed ticks are backfilled when an instance becomes the leader (Netdata's
/// per-second history is finite; older gaps stay gaps).
const MAX_BACKFILL_TICKS: i64 = 360;

/// Whether this instance holds the leader lock (checked on the blocking pool).
async fn poll_leader(lock: &Arc<Mutex<dsmon::store::PgLeaderLock>>) -> bool {
    let lock = Arc::clone(lock);
    tokio::task::spawn_blocking(move || lock.lock().map(|mut l| l.poll()).unwrap_or(false))
        .await
        .unwrap_or(false)
}

/// An instance on PostgreSQL: waits to be the leader, then backfills the ticks nobody logged since
/// the newest one stored (from the agents: Netdata keeps the seconds, so the interval averages
/// are exact), logs every tick and runs the alerts' notifications until it stops or loses the
/// lock, and then waits again.
async fn lead(
    lock: dsmon::store::PgLeaderLock,
    collector: Arc<Collector>,
    store: SharedSamples,
    alerts: Option<Arc<dsmon::alerts::Alerts>>,
    interval: u64,
    mut stop: watch::Receiver<bool>,
) {
    let lock = Arc::new(Mutex::new(lock));
    let release = |lock: Arc<Mutex<dsmon::store::PgLeaderLock>>| async move {
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(mut l) = lock.lock() {
                l.release();
            }
        })
        .await;
    };
    loop {
        // Following: the alerts are evaluated here too (this instance's /api/alerts is current)
        // but recorded and sent by the leader; silences and acknowledgements made elsewhere are
        // taken every LEADER_POLL.
        let (follow_tx, follow_rx) = watch::channel(false);
        let following = alerts
            .as_ref()
            .map(|a| tokio::spawn(Arc::clone(a).follow(collector.subscribe(), follow_rx)));
        loop {
            if *stop.borrow() {
                let _ = follow_tx.send(true);
                release(lock).await;
                return;
            }
            if poll_leader(&lock).await {
                break;
            }
            sync_alerts(alerts.as_ref()).await;
            tokio::select! {
                _ = tokio::time::sleep(LEADER_POLL) => {}
                _ = stop.changed() => {}
            }
        }
        let _ = follow_tx.send(true);
        if let Some(t) = following {
            let _ = t.await;
        }
        tracing::info!("leader of the instances on this database: logging ticks and sending alert notifications");
        backfill(&collector, &store, interval).await;
        if let Some(a) = alerts.as_ref().map(Arc::clone) {
            // Continue from the alert state the previous leader recorded.
            match tokio::task::spawn_blocking(move || a.resume()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "alert state not re-read from the database")
                }
                Err(e) => tracing::error!(error = %e, "alert state not re-read from the database"),
            }
        }
        let (lost_tx, lost_rx) = watch::channel(false);
        let alerts_task = alerts
            .as_ref()
            .map(|a| tokio::spawn(Arc::clone(a).run(collector.subscribe(), lost_rx.clone())));
        let logger = {
            let (collector, store, rx) = (Arc::clone(&collector), Arc::clone(&store), lost_rx);
            tokio::spawn(async move { collector.run_logger_while_leading(store, rx).await })
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(LEADER_POLL) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            if !poll_leader(&lock).await {
                tracing::warn!(
                    "no longer the leader: logging stops here until this instance leads again"
                );
                break;
            }
            sync_alerts(alerts.as_ref()).await;
        }
        let _ = lost_tx.send(true);
        let _ = logger.await;
        if let Some(t) = alerts_task {
            let _ = t.await;
        }
        if *stop.borrow() {
            release(lock).await;
            return;
        }
    }
}

/// Takes the silences and acknowledgements other instances recorded (see `Alerts::sync_shared`).
async fn sync_alerts(alerts: Option<&Arc<dsmon::alerts::Alerts>>) {
    let Some(a) = alerts.map(Arc::clone) else {
        return;
    };
    match tokio::task::spawn_blocking(move || a.sync_shared()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "alert state of the other instances not read"),
        Err(e) => tracing::debug!(error = %e, "alert state of the other instances not read"),
    }
}

/// Logs the ticks between the newest stored one and now (the logger then logs the current one).
async fn backfill(collector: &Collector, store: &SharedSamples, interval: u64) {
    let latest = {
        let store = Arc::clone(store);
        tokio::task::spawn_blocking(move || store.lock().ok().map(|s| s.latest_ts())).await
    };
    let latest = match latest {
        Ok(Some(Ok(Some(ts)))) => ts,
        Ok(Some(Err(e))) => {
            tracing::warn!(error = %e, "cannot read the newest tick: nothing backfilled");
            return;
        }
        _ => return,
    };
    let step = interval as i64;
    let current = tick_at_or_before(unix_now(), interval);
    let mut ts = (latest + step).max(current - MAX_BACKFILL_TICKS * step);
    if ts < current {
        tracing::info!(
            from = %format_ts(ts),
            ticks = (current - ts) / step,
            "backfilling the ticks logged by nobody"
        );
    }
    while ts < current {
        if let Err(e) = collector.log_tick(store, ts).await {
            tracing::warn!(tick = %format_ts(ts), error = %e, "backfill of a tick failed");
        }
        ts += step;
    }
}

/// The alerts (also without rules: SIGHUP may add some), their state restored from the store.
fn start_alerts(
    cfg: &Config,
    storage: &Storage,
    samples: &SharedSamples,
) -> Result<Arc<dsmon::alerts::Alerts>, String> {
    let a = &cfg.alerts;
    let notifiers =
        dsmon::alerts::notify::Notifiers::new(&a.notifiers, a.attempts, a.retry_backoff)
            .map_err(|e| e.to_string())?;
    let store = storage.alerts().map_err(|e| e.to_string())?;
    let alerts = dsmon::alerts::Alerts::new(a.clone(), store, Some(Arc::clone(samples)), notifiers)
        .map_err(|e| e.to_string())?;
    tracing::info!(
        rules = a.rules.len(),
        notifiers = a.notifiers.len(),
        firing = alerts.current().len(),
        "alerts evaluated on every live poll"
    );
    Ok(alerts)
}

/// On SIGHUP, reads the configuration again and applies its `[[nodes]]`, `[[parents]]` and
/// `[alerts]` from then on, without a restart (the other sections need one). A file that no longer
/// validates is refused with the error logged, and the running set and rules are kept.
async fn reload_on_hangup(
    path: PathBuf,
    discovery: Arc<Discovery>,
    alerts: Arc<dsmon::alerts::Alerts>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        let cfg = match config::load(&path) {
            Ok(cfg) => cfg,
            Err(e) => {
                tracing::error!(error = %e, "configuration not reloaded: the running node set is kept");
                continue;
            }
        };
        match discovery.reconfigure(&cfg.nodes, &cfg.parents) {
            Ok(c) => tracing::info!(
                added = c.added.len(),
                removed = c.removed.len(),
                changed = c.changed.len(),
                nodes = cfg.nodes.len(),
                parents = cfg.parents.len(),
                "configuration reloaded: [[nodes]] and [[parents]] applied (and [alerts] below; other sections take effect at the next start)"
            ),
            Err(e) => {
                tracing::error!(error = %e, "configuration not reloaded: the running node set is kept");
                continue;
            }
        }
        let a = &cfg.alerts;
        let notifiers = match dsmon::alerts::notify::Notifiers::new(
            &a.notifiers,
            a.attempts,
            a.retry_backoff,
        ) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "alert rules not reloaded: the running rules are kept");
                continue;
            }
        };
        let (alerts, a) = (Arc::clone(&alerts), a.clone());
        match tokio::task::spawn_blocking(move || alerts.reload(a, notifiers)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "alert rules not reloaded: the running rules are kept")
            }
            Err(e) => {
                tracing::error!(error = %e, "alert rules not reloaded: the running rules are kept")
            }
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            // Without signal handlers there is nothing to wait for but Ctrl-C.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn check(cfg: &Config) -> ExitCode {
    let (collector, discovery) = match collector_and_discovery(cfg) {
        Ok(parts) => parts,
        Err(code) => return code,
    };
    if !cfg.parents.is_empty() {
        if let Err(e) = discovery.refresh().await {
            return fail(EXIT_RUNTIME, &e);
        }
    }
    let parents = discovery.report();
    let acl_probes = cfg
        .nodes
        .iter()
        .map(|n| dsmon::netdata::acl::probe(n, cfg.collector.timeout));
    let (probes, exposures) = tokio::join!(
        collector.probe(),
        futures_util::future::join_all(acl_probes)
    );
    let mut out = io::stdout().lock();
    let unreachable = probes
        .iter()
        .filter(|p| p.metrics.is_err() || p.info.is_err())
        .count();
    let parents_down = parents
        .iter()
        .filter(|p| !matches!(p.read, Some(Ok(_))))
        .count();
    let res = (|| -> io::Result<()> {
        writeln!(
            out,
            "{}: configuration ok, {} nodes",
            cfg.path.display(),
            probes.len()
        )?;
        writeln!(
            out,
            "{:<16} {:<6} {:<9} {:>7} {:>7} {:>7} {:>11} {:>11}  URL / ERROR",
            "NODE", "STATE", "VERSION", "CPU%", "MEM%", "DISK%", "IN kbit/s", "OUT kbit/s"
        )?;
        for p in &probes {
            let version = p.info.as_ref().map(|i| i.version.as_str()).unwrap_or("-");
            let state = if p.metrics.is_ok() && p.info.is_ok() {
                "up"
            } else {
                "down"
            };
            let mut detail = match (&p.metrics, &p.info) {
                (Err(e), _) | (Ok(_), Err(e)) => e.to_string(),
                _ => p.url.clone(),
            };
            if let Some(n) = cfg.nodes.iter().find(|n| n.name == p.node) {
                if !n.tags.is_empty() {
                    detail.push_str(&format!("  tags: {}", n.tags.join(", ")));
                }
            }
            writeln!(
                out,
                "{:<16} {:<6} {:<9} {}  {}",
                p.node,
                state,
                version,
                metric_columns(p.metrics.as_ref().ok()),
                detail
            )?;
        }
        writeln!(
            out,
            "{} of {} nodes reachable",
            probes.len() - unreachable,
            probes.len()
        )?;
        for p in &parents {
            print_parent(&mut out, p)?;
        }
        for w in exposures.iter().flat_map(|e| &e.warnings) {
            writeln!(out, "warning: {w}")?;
        }
        Ok(())
    })();
    match res {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => fail(EXIT_RUNTIME, &e),
        _ if unreachable > 0 || parents_down > 0 => ExitCode::from(EXIT_RUNTIME),
        _ => ExitCode::SUCCESS,
    }
}

/// What one `[[parents]]` entry yields: each child it lists and the node it became (or why not).
fn print_parent(out: &mut impl Write, p: &dsmon::engine::ParentReport) -> io::Result<()> {
    writeln!(out)?;
    match &p.read {
        Some(Ok(n)) => writeln!(out, "parent {}: {n} children listed", p.url)?,
        Some(Err(e)) => writeln!(out, "parent {}: did not answer: {e}", p.url)?,
        None => writeln!(out, "parent {}: not read", p.url)?,
    }
    if p.children.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "  {:<24} {:<36} {:<10} NODE",
        "HOSTNAME", "GUID", "STREAMING"
    )?;
    for c in &p.children {
        let node = match &c.node {
            Ok(name) => name.clone(),
            Err(skipped) => format!("- ({skipped})"),
        };
        writeln!(
            out,
            "  {:<24} {:<36} {:<10} {}",
            c.hostname,
            c.guid,
            if c.reachable { "yes" } else { "no" },
            node
        )?;
    }
    Ok(())
}

async fn netdata_acl(cfg: &Config, given: Vec<std::net::IpAddr>) -> ExitCode {
    let (text, errors) = dsmon::netdata::acl::report(&cfg.nodes, &given).await;
    for e in &errors {
        eprintln!("dsmon: {e}");
    }
    match io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => fail(EXIT_RUNTIME, &e),
        _ if !errors.is_empty() => ExitCode::from(EXIT_RUNTIME),
        _ => ExitCode::SUCCESS,
    }
}

fn export(cfg: &Config, from: &str, to: &str, nodes: Vec<String>, format: Format) -> ExitCode {
    let now = chrono::Utc::now();
    let q = match (export::parse_time(from, now), export::parse_time(to, now)) {
        (Ok(from), Ok(to)) => RowQuery { from, to, nodes },
        (Err(e), _) | (_, Err(e)) => return fail(EXIT_USAGE, &e),
    };
    let store: Box<dyn SampleStore> = match &cfg.storage.postgres {
        None => match SqliteStore::open_existing(&cfg.storage.path) {
            Ok(s) => Box::new(s),
            Err(e) => return fail(EXIT_RUNTIME, &e),
        },
        Some(_) => match Storage::open(cfg) {
            Ok(Storage::Postgres(db)) => Box::new(db.samples()),
            Ok(Storage::Sqlite(_)) => return fail(EXIT_RUNTIME, &"no PostgreSQL configured"),
            Err(e) => return fail(EXIT_RUNTIME, &e),
        },
    };
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    match export::write_rows(&*store, &q, format, &mut out) {
        Ok(n) => {
            tracing::info!(rows = n, "exported");
            ExitCode::SUCCESS
        }
        Err(ExportError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(
            e @ (ExportError::Range { .. }
            | ExportError::UnknownNode { .. }
            | ExportError::BadTime { .. }),
        ) => fail(EXIT_USAGE, &e),
        Err(e) => fail(EXIT_RUNTIME, &e),
    }
}

fn import(cfg: &Config, file: &std::path::Path) -> ExitCode {
    let name = file.display().to_string();
    let input: Box<dyn io::Read> = if name == "-" {
        Box::new(io::stdin().lock())
    } else {
        match std::fs::File::open(file) {
            Ok(f) => Box::new(io::BufReader::with_capacity(1 << 16, f)),
            Err(e) => return fail(EXIT_USAGE, &format!("{name}: cannot read: {e}")),
        }
    };
    // Parse everything before the database is even opened: a bad file changes nothing.
    let rows = match dsmon::store::import::parse(input, &name) {
        Ok(rows) => rows,
        Err(e) => return fail(EXIT_USAGE, &e),
    };
    let store = match Storage::open(cfg).and_then(|s| s.samples()) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_RUNTIME, &e),
    };
    let start = std::time::Instant::now();
    let written = match store.lock() {
        Ok(mut s) => s.insert_rows(&rows),
        Err(_) => Err(StoreError::Poisoned),
    };
    match written {
        Ok(inserted) => {
            let secs = start.elapsed().as_secs_f64();
            let _ = writeln!(
                io::stdout(),
                "{name}: {} rows, {inserted} new, {} already present ({:.0} rows/s written)",
                rows.len(),
                rows.len() - inserted,
                rows.len() as f64 / secs.max(1e-9)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_RUNTIME, &e),
    }
}

/// `dsmon migrate --to URL`: the configured SQLite file into a PostgreSQL database.
fn migrate(
    cfg: &Config,
    to: &str,
    password_file: Option<&std::path::Path>,
    ca_file: Option<PathBuf>,
) -> ExitCode {
    let url = match config::check_postgres_url(to) {
        Ok(u) => u,
        Err(e) => return fail(EXIT_USAGE, &format!("--to: {e}")),
    };
    let password = match password_file {
        None => None,
        Some(p) => match std::fs::read_to_string(p) {
            Ok(text) if !text.trim_end_matches(['\n', '\r']).is_empty() => {
                Some(text.trim_end_matches(['\n', '\r']).to_string())
            }
            Ok(_) => return fail(EXIT_USAGE, &format!("{}: is empty", p.display())),
            Err(e) => return fail(EXIT_USAGE, &format!("{}: cannot read ({e})", p.display())),
        },
    };
    let db = match PgDatabase::connect(&PgOptions {
        url,
        password,
        ca_file,
        pool_size: 2,
    }) {
        Ok(db) => db,
        Err(e) => return fail(EXIT_RUNTIME, &e),
    };
    let start = std::time::Instant::now();
    match dsmon::store::migrate::sqlite_to_postgres(&cfg.storage.path, &db) {
        Ok(report) => {
            let _ = writeln!(
                io::stdout(),
                "{} -> {}: {report} ({:.1} s)",
                cfg.storage.path.display(),
                db.label(),
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_RUNTIME, &e),
    }
}

fn print_rows<'a>(out: &mut impl Write, rows: impl Iterator<Item = &'a Row>) -> io::Result<()> {
    writeln!(
        out,
        "{:<16} {:<6} {:>7} {:>7} {:>7} {:>11} {:>11}  ERROR",
        "NODE", "STATE", "CPU%", "MEM%", "DISK%", "IN kbit/s", "OUT kbit/s"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<16} {:<6} {}  {}",
            r.node,
            if r.metrics.is_some() { "up" } else { "down" },
            metric_columns(r.metrics.as_ref()),
            r.error.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}

fn metric_columns(m: Option<&Metrics>) -> String {
    match m {
        Some(m) => format!(
            "{:>7.1} {:>7.1} {:>7.1} {:>11.1} {:>11.1}",
            m.cpu_pct, m.mem_pct, m.disk_pct, m.net_in_kbps, m.net_out_kbps
        ),
        None => format!("{:>7} {:>7} {:>7} {:>11} {:>11}", "-", "-", "-", "-", "-"),
    }
}
