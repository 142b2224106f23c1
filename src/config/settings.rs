//! `pivotwatch.toml`: every key optional, every default documented here and
//! in the README.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::diag::Sink;
use crate::record::Severity;
use crate::schedule::Schedule;

/// Default User-Agent: names the tool and how to reach its operator.
pub const DEFAULT_USER_AGENT: &str = concat!(
    "pivotwatch/",
    env!("CARGO_PKG_VERSION"),
    " (+mailto:ops@example.org)"
);

/// Default `[store] gc_interval`. [default: 6h]
pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// Validated settings with every default applied.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The settings file, when one was read.
    pub file: Option<PathBuf>,
    /// sled database and evidence folder (`[store] path`, default `.pivotwatch`).
    pub state_dir: PathBuf,
    /// `[store] write_timeout`: how long a flush or commit of the store
    /// may wait for the disk before it fails (a full or failing disk can
    /// block sled forever). [default: 10s]
    pub store_write_timeout: Duration,
    /// `[store] keep_snapshots`, `keep_for` and their per-source
    /// overrides (`[store.source."ENTITY/SOURCE"]` or
    /// `[store.source."ENTITY"]`). [default: keep everything]
    pub retention: crate::store::RetentionPolicy,
    /// `[store] gc_interval`: how often `run` applies the retention and
    /// collects unreferenced bodies. [default: 6h]
    pub gc_interval: Duration,
    /// HTTP client settings.
    pub http: HttpSettings,
    /// Per-host politeness overrides (`[hosts."name"]`).
    pub hosts: BTreeMap<String, HostSettings>,
    /// `From:` and spool folder.
    pub email: EmailSettings,
    /// SMTP transport; `None` writes `.eml` files to the spool folder.
    pub smtp: Option<SmtpSettings>,
    /// Alert subscribers.
    pub subscribers: Vec<Subscriber>,
    /// Status endpoint address (`[status] listen`), off when absent.
    pub status_listen: Option<SocketAddr>,
    /// Extra reference data folder (`[reference] dir`).
    pub reference_dir: Option<PathBuf>,
    /// How `pivotwatch run` schedules and watches sources (`[daemon]`).
    pub daemon: DaemonSettings,
    /// The built-in registry adapters (`[registries.*]`).
    pub registries: crate::registry::Registries,
}

/// Default `[daemon] jitter`. [default: 60s]
pub const DEFAULT_JITTER: Duration = Duration::from_secs(60);
/// Default `[daemon] failure_threshold`. [default: 3]
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// Default `[daemon] grace_period`. [default: 30s]
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    /// `jitter`: a random delay of up to this much is added to every
    /// scheduled check, so sources sharing a schedule do not hit their
    /// sites in lockstep; `"0s"` turns it off. [default: 60s]
    pub jitter: Duration,
    /// `failure_threshold`: consecutive failed (or blocked) checks after
    /// which the watchlist's maintainers get one source-broken notice.
    /// [default: 3]
    pub failure_threshold: u32,
    /// `grace_period`: on SIGTERM or SIGINT, how long checks already in
    /// flight may take to finish before the daemon exits. [default: 30s]
    pub grace_period: Duration,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            jitter: DEFAULT_JITTER,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            grace_period: DEFAULT_GRACE_PERIOD,
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `user_agent`, default [`DEFAULT_USER_AGENT`].
    pub user_agent: String,
    /// `timeout` (total per request), default 30s.
    pub timeout: Duration,
    /// `connect_timeout`, default 10s.
    pub connect_timeout: Duration,
    /// `max_body` after decompression, default 8 MiB.
    pub max_body: u64,
    /// `max_redirects`, default 5.
    pub max_redirects: usize,
    /// `allow_private_addresses`, default false.
    pub allow_private_addresses: bool,
    /// `concurrency`: checks in flight at once, default 16.
    pub concurrency: usize,
    /// `per_host_concurrency`, default 2.
    pub per_host_concurrency: usize,
    /// `per_host_interval`, default 1s.
    pub per_host_interval: Duration,
    /// `robots_txt`: honour each site's robots.txt (daemon), default true.
    pub robots_txt: bool,
}

impl HttpSettings {
    /// The fetch options these settings give, private addresses allowed
    /// when `allow_private` (a per-source or command-line override) or
    /// `allow_private_addresses` says so.
    pub fn fetch_options(&self, allow_private: bool) -> crate::fetch::FetchOptions {
        crate::fetch::FetchOptions {
            user_agent: self.user_agent.clone(),
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            max_body: self.max_body,
            max_redirects: self.max_redirects,
            allow_private_addresses: allow_private,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            user_agent: DEFAULT_USER_AGENT.to_string(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body: 8 * 1024 * 1024,
            max_redirects: 5,
            allow_private_addresses: false,
            concurrency: 16,
            per_host_concurrency: 2,
            per_host_interval: Duration::from_secs(1),
            robots_txt: true,
        }
    }
}

/// `[hosts."name"]`.
#[derive(Debug, Clone, Default)]
pub struct HostSettings {
    /// Requests in flight to this host at once.
    pub concurrency: Option<usize>,
    /// Minimum time between two requests to this host.
    pub interval: Option<Duration>,
}

/// `[email]`.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// `from`, default `pivotwatch <pivotwatch@localhost>`.
    pub from: String,
    /// `spool_dir`, default `<state dir>/spool`.
    pub spool_dir: PathBuf,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (refuse if not offered).
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
    /// No TLS: only to a loopback host.
    None,
}

/// `[smtp]`.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Relay host.
    pub host: String,
    /// Port (default 25 for none/starttls... 587 is common too; 465 for tls).
    pub port: u16,
    /// `security`, default `starttls`.
    pub security: SmtpSecurity,
    /// Login name, when the relay wants authentication.
    pub username: Option<String>,
    /// File holding the password (e.g. systemd's credentials directory).
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// The longest one mail's SMTP exchange (connect, TLS, login, send)
    /// may take, default 30s; past it the attempt counts as a transient
    /// failure.
    pub timeout: Duration,
}

/// Immediate mail per finding, or one digest on a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// One mail per finding.
    Immediate,
    /// One mail per digest schedule with every finding since the last.
    Digest,
}

/// `[[subscriber]]`.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Unique name.
    pub name: String,
    /// Recipient addresses.
    pub to: Vec<String>,
    /// Watchlist names; empty means all.
    pub watchlists: Vec<String>,
    /// Entity tags; empty means all.
    pub tags: Vec<String>,
    /// Minimum severity, default `medium`.
    pub min_severity: Severity,
    /// Rule ids to include (empty = all).
    pub rules: Vec<String>,
    /// Rule ids to exclude.
    pub exclude_rules: Vec<String>,
    /// Delivery mode.
    pub mode: DeliveryMode,
    /// Digest schedule (digest mode).
    pub digest_schedule: Option<Schedule>,
    /// Timezone the digest schedule is read in (`timezone`, IANA name,
    /// default UTC).
    pub timezone: chrono_tz::Tz,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    store: Option<RawStore>,
    http: Option<RawHttp>,
    #[serde(default)]
    hosts: BTreeMap<String, RawHost>,
    email: Option<RawEmail>,
    smtp: Option<RawSmtp>,
    #[serde(default)]
    subscriber: Vec<RawSubscriber>,
    status: Option<RawStatus>,
    reference: Option<RawReference>,
    daemon: Option<RawDaemon>,
    registries: Option<RawRegistries>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRegistries {
    companies_house: Option<RawRegistry>,
    gleif: Option<RawRegistry>,
    opencorporates: Option<RawRegistry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    base_url: Option<Spanned<String>>,
    stream_url: Option<Spanned<String>>,
    api_key_file: Option<Spanned<String>>,
    api_key_env: Option<Spanned<String>>,
    stream_api_key_file: Option<Spanned<String>>,
    stream_api_key_env: Option<Spanned<String>>,
    stream: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    jitter: Option<Spanned<String>>,
    failure_threshold: Option<Spanned<u32>>,
    grace_period: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<String>,
    write_timeout: Option<Spanned<String>>,
    keep_snapshots: Option<Spanned<usize>>,
    keep_for: Option<Spanned<String>>,
    gc_interval: Option<Spanned<String>>,
    #[serde(default)]
    source: BTreeMap<String, RawRetention>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    keep_snapshots: Option<Spanned<usize>>,
    keep_for: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    user_agent: Option<String>,
    timeout: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    max_body: Option<Spanned<String>>,
    max_redirects: Option<usize>,
    allow_private_addresses: Option<bool>,
    concurrency: Option<Spanned<usize>>,
    per_host_concurrency: Option<Spanned<usize>>,
    per_host_interval: Option<Spanned<String>>,
    robots_txt: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    concurrency: Option<Spanned<usize>>,
    interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    from: Option<Spanned<String>>,
    spool_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Spanned<String>,
    port: Option<u16>,
    security: Option<SmtpSecurity>,
    username: Option<String>,
    password_file: Option<String>,
    password_env: Option<String>,
    password: Option<Spanned<toml::Value>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubscriber {
    name: Spanned<String>,
    to: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    watchlists: Vec<Spanned<String>>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    min_severity: Option<Spanned<String>>,
    #[serde(default)]
    rules: Vec<Spanned<String>>,
    #[serde(default)]
    exclude_rules: Vec<Spanned<String>>,
    mode: Option<DeliveryMode>,
    digest_schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReference {
    dir: Option<String>,
}

/// What a subscriber filter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameKind {
    /// `watchlists = [...]`: a watchlist's name.
    Watchlist,
    /// `tags = [...]`: a tag of a watchlist or an entity.
    Tag,
    /// `rules` / `exclude_rules`: a built-in or custom rule id.
    Rule,
}

/// A name in a subscriber's filter, with its location, checked against
/// the watchlists once they are loaded ([`super::Config::load`]).
#[derive(Debug, Clone)]
pub(crate) struct NameRef {
    pub(crate) kind: NameKind,
    pub(crate) name: String,
    pub(crate) subscriber: String,
    /// Where the name is written (the message is filled in by the check).
    pub(crate) at: super::Diagnostic,
}

fn names(v: &[Spanned<String>]) -> Vec<String> {
    v.iter().map(|n| n.get_ref().clone()).collect()
}

/// Reads the file table by table, so a wrong type in `[http]` does not hide
/// an unknown key in `[email]`: every top-level table is deserialised on
/// its own and every error is reported. The tables that did deserialise
/// are returned, so their values are validated too; `None` only for a
/// syntax error.
fn parse_tables(text: &str, sink: &mut Sink<'_>) -> Option<RawSettings> {
    use toml::de::{DeTable, DeValue};
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in &errors {
            sink.toml(e, "TOML syntax error");
        }
        return None;
    }
    let mut raw = RawSettings::default();
    for (key, value) in root.into_inner() {
        let span = value.span();
        let mut one = DeTable::new();
        one.insert(key, value);
        let part = RawSettings::deserialize(toml::de::ValueDeserializer::from(Spanned::new(
            span,
            DeValue::Table(one),
        )));
        match part {
            Ok(p) => {
                raw.store = raw.store.or(p.store);
                raw.http = raw.http.or(p.http);
                raw.hosts.extend(p.hosts);
                raw.email = raw.email.or(p.email);
                raw.smtp = raw.smtp.or(p.smtp);
                raw.subscriber.extend(p.subscriber);
                raw.status = raw.status.or(p.status);
                raw.reference = raw.reference.or(p.reference);
                raw.daemon = raw.daemon.or(p.daemon);
                raw.registries = raw.registries.or(p.registries);
            }
            Err(e) => sink.toml(&e, ""),
        }
    }
    Some(raw)
}

/// Parses a duration like `30s`, `5m`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. \"30s\", \"5m\" or \"1h\""))
}

/// Parses a size like `8MiB`, `500 KB`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("invalid size {s:?} ({e}); write e.g. \"8MiB\" or \"500KB\""))
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl Settings {
    /// Built-in defaults, used when there is no settings file.
    pub fn defaults(state_dir: Option<&Path>) -> Settings {
        let state_dir = state_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".pivotwatch"));
        Settings {
            file: None,
            email: EmailSettings {
                from: "pivotwatch <pivotwatch@localhost>".to_string(),
                spool_dir: state_dir.join("spool"),
            },
            state_dir,
            store_write_timeout: crate::store::DEFAULT_WRITE_TIMEOUT,
            retention: crate::store::RetentionPolicy::default(),
            gc_interval: DEFAULT_GC_INTERVAL,
            http: HttpSettings::default(),
            hosts: BTreeMap::new(),
            smtp: None,
            subscribers: Vec::new(),
            status_listen: None,
            reference_dir: None,
            daemon: DaemonSettings::default(),
            registries: crate::registry::Registries::default(),
        }
    }

    /// Parses and validates a settings file's text. `state_dir_flag` (the
    /// `--state-dir` flag) wins over `[store] path`. Errors go to `sink`.
    pub(crate) fn parse(
        path: &Path,
        text: &str,
        state_dir_flag: Option<&Path>,
        sink: &mut Sink<'_>,
        refs: &mut Vec<NameRef>,
    ) -> Option<Settings> {
        let before = sink.out.len();
        let raw = parse_tables(text, sink)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let state_dir = match (
            state_dir_flag,
            raw.store.as_ref().and_then(|s| s.path.as_ref()),
        ) {
            (Some(flag), _) => flag.to_path_buf(),
            (None, Some(p)) => resolve(base, p),
            (None, None) => PathBuf::from(".pivotwatch"),
        };
        let mut s = Settings::defaults(Some(&state_dir));
        s.file = Some(path.to_path_buf());

        let dur = |v: &Option<Spanned<String>>, sink: &mut Sink<'_>, default: Duration| match v {
            None => default,
            Some(v) => match parse_duration(v.get_ref()) {
                Ok(d) if !d.is_zero() || default.is_zero() => d,
                Ok(_) => {
                    sink.error(Some(v.span()), "duration must be greater than zero");
                    default
                }
                Err(e) => {
                    sink.error(Some(v.span()), e);
                    default
                }
            },
        };
        let positive = |v: &Option<Spanned<usize>>, sink: &mut Sink<'_>, default: usize| match v {
            None => default,
            Some(v) if *v.get_ref() == 0 => {
                sink.error(Some(v.span()), "must be at least 1");
                default
            }
            Some(v) => *v.get_ref(),
        };

        if let Some(h) = &raw.http {
            let d = HttpSettings::default();
            if let Some(ua) = &h.user_agent {
                s.http.user_agent = ua.clone();
            }
            s.http.timeout = dur(&h.timeout, sink, d.timeout);
            s.http.connect_timeout = dur(&h.connect_timeout, sink, d.connect_timeout);
            s.http.per_host_interval = dur(&h.per_host_interval, sink, Duration::ZERO);
            if h.per_host_interval.is_none() {
                s.http.per_host_interval = d.per_host_interval;
            }
            if let Some(mb) = &h.max_body {
                match parse_size(mb.get_ref()) {
                    Ok(0) => sink.error(Some(mb.span()), "max_body must be greater than zero"),
                    Ok(n) => s.http.max_body = n,
                    Err(e) => sink.error(Some(mb.span()), e),
                }
            }
            if let Some(r) = h.max_redirects {
                s.http.max_redirects = r;
            }
            if let Some(a) = h.allow_private_addresses {
                s.http.allow_private_addresses = a;
            }
            if let Some(r) = h.robots_txt {
                s.http.robots_txt = r;
            }
            s.http.concurrency = positive(&h.concurrency, sink, d.concurrency);
            s.http.per_host_concurrency =
                positive(&h.per_host_concurrency, sink, d.per_host_concurrency);
        }
        for (name, h) in &raw.hosts {
            let hs = HostSettings {
                concurrency: h
                    .concurrency
                    .as_ref()
                    .map(|_| positive(&h.concurrency, sink, 1)),
                interval: h
                    .interval
                    .as_ref()
                    .map(|_| dur(&h.interval, sink, Duration::ZERO)),
            };
            s.hosts.insert(name.to_ascii_lowercase(), hs);
        }
        if let Some(e) = &raw.email {
            if let Some(from) = &e.from {
                if sink.address(from.span(), from.get_ref()) {
                    s.email.from = from.get_ref().clone();
                }
            }
            if let Some(d) = &e.spool_dir {
                s.email.spool_dir = resolve(base, d);
            }
        }
        if let Some(m) = &raw.smtp {
            if let Some(p) = &m.password {
                sink.error(
                    Some(p.span()),
                    "a password is never read from the settings file; use password_file (e.g. systemd's LoadCredential) or password_env",
                );
            }
            if m.password_file.is_some() && m.password_env.is_some() {
                sink.error(
                    Some(m.host.span()),
                    "set password_file or password_env, not both",
                );
            }
            let has_password = m.password_file.is_some() || m.password_env.is_some();
            if m.username.is_some() && !has_password {
                sink.error(
                    Some(m.host.span()),
                    "username is set but no password source: add password_file or password_env",
                );
            }
            if m.username.is_none() && has_password {
                sink.error(
                    Some(m.host.span()),
                    "a password source is set but no username: add username, or drop password_file/password_env",
                );
            }
            let security = m.security.unwrap_or(SmtpSecurity::Starttls);
            if m.host.get_ref().trim().is_empty() {
                sink.error(Some(m.host.span()), "smtp host is empty");
            }
            if security == SmtpSecurity::None && !is_loopback_host(m.host.get_ref()) {
                sink.error(
                    Some(m.host.span()),
                    format!(
                        "security = \"none\" is only allowed to a loopback host, not {:?}; use \"starttls\" or \"tls\"",
                        m.host.get_ref()
                    ),
                );
            }
            s.smtp = Some(SmtpSettings {
                host: m.host.get_ref().clone(),
                port: m.port.unwrap_or(match security {
                    SmtpSecurity::Tls => 465,
                    _ => 25,
                }),
                security,
                username: m.username.clone(),
                password_file: m.password_file.as_deref().map(|p| resolve(base, p)),
                password_env: m.password_env.clone(),
                timeout: dur(&m.timeout, sink, Duration::from_secs(30)),
            });
        }
        let mut seen = BTreeMap::new();
        for sub in &raw.subscriber {
            for (kind, list) in [
                (NameKind::Watchlist, &sub.watchlists),
                (NameKind::Tag, &sub.tags),
                (NameKind::Rule, &sub.rules),
                (NameKind::Rule, &sub.exclude_rules),
            ] {
                for n in list {
                    refs.push(NameRef {
                        kind,
                        name: n.get_ref().clone(),
                        subscriber: sub.name.get_ref().clone(),
                        at: sink.at(n.span(), ""),
                    });
                }
            }
            if seen.insert(sub.name.get_ref().clone(), ()).is_some() {
                sink.error(
                    Some(sub.name.span()),
                    format!("duplicate subscriber name {:?}", sub.name.get_ref()),
                );
            }
            if sub.to.get_ref().is_empty() {
                sink.error(
                    Some(sub.to.span()),
                    "a subscriber needs at least one address in `to`",
                );
            }
            for a in sub.to.get_ref() {
                sink.address(a.span(), a.get_ref());
            }
            let min_severity = match &sub.min_severity {
                None => Severity::Medium,
                Some(v) => v.get_ref().parse().unwrap_or_else(|e: String| {
                    sink.error(Some(v.span()), e);
                    Severity::Medium
                }),
            };
            let mode = sub.mode.unwrap_or(DeliveryMode::Immediate);
            let digest_schedule = match &sub.digest_schedule {
                Some(v) => match Schedule::parse(v.get_ref()) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        sink.error(Some(v.span()), e);
                        None
                    }
                },
                None => {
                    if mode == DeliveryMode::Digest {
                        sink.error(
                            Some(sub.name.span()),
                            "mode = \"digest\" needs digest_schedule, e.g. \"0 8 * * 1-5\"",
                        );
                    }
                    None
                }
            };
            let timezone = match &sub.timezone {
                None => chrono_tz::UTC,
                Some(v) => v.get_ref().parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
                    sink.error(
                        Some(v.span()),
                        format!(
                            "unknown timezone {:?}; write an IANA name such as \"Europe/Paris\" or \"UTC\"",
                            v.get_ref()
                        ),
                    );
                    chrono_tz::UTC
                }),
            };
            s.subscribers.push(Subscriber {
                name: sub.name.get_ref().clone(),
                to: sub
                    .to
                    .get_ref()
                    .iter()
                    .map(|a| a.get_ref().clone())
                    .collect(),
                watchlists: names(&sub.watchlists),
                tags: names(&sub.tags),
                min_severity,
                rules: names(&sub.rules),
                exclude_rules: names(&sub.exclude_rules),
                mode,
                digest_schedule,
                timezone,
            });
        }
        if let Some(st) = &raw.status
            && let Some(l) = &st.listen
        {
            match l.get_ref().parse::<SocketAddr>() {
                Ok(a) => s.status_listen = Some(a),
                Err(e) => sink.error(
                    Some(l.span()),
                    format!(
                        "invalid listen address {:?} ({e}); write e.g. \"127.0.0.1:9187\"",
                        l.get_ref()
                    ),
                ),
            }
        }
        if let Some(r) = &raw.reference
            && let Some(d) = &r.dir
        {
            s.reference_dir = Some(resolve(base, d));
        }
        if let Some(r) = &raw.registries {
            registries(r, base, &mut s, sink);
        }
        registry_host_limits(&mut s);
        if let Some(st) = &raw.store {
            s.store_write_timeout =
                dur(&st.write_timeout, sink, crate::store::DEFAULT_WRITE_TIMEOUT);
            s.gc_interval = dur(&st.gc_interval, sink, DEFAULT_GC_INTERVAL);
            let retention = |keep: &Option<Spanned<usize>>,
                             keep_for: &Option<Spanned<String>>,
                             sink: &mut Sink<'_>,
                             base: crate::store::Retention| {
                crate::store::Retention {
                    keep_snapshots: match keep {
                        None => base.keep_snapshots,
                        some => Some(positive(some, sink, 1)),
                    },
                    keep_for: match keep_for {
                        None => base.keep_for,
                        some => Some(dur(some, sink, Duration::from_secs(1))),
                    },
                }
            };
            let default = retention(
                &st.keep_snapshots,
                &st.keep_for,
                sink,
                crate::store::Retention::default(),
            );
            s.retention.default = default;
            for (key, r) in &st.source {
                let one = retention(&r.keep_snapshots, &r.keep_for, sink, default);
                s.retention.overrides.insert(key.clone(), one);
            }
        }
        if let Some(d) = &raw.daemon {
            if d.jitter.is_some() {
                s.daemon.jitter = dur(&d.jitter, sink, Duration::ZERO);
            }
            s.daemon.grace_period = dur(&d.grace_period, sink, DEFAULT_GRACE_PERIOD);
            if let Some(t) = &d.failure_threshold {
                if *t.get_ref() == 0 {
                    sink.error(Some(t.span()), "failure_threshold must be at least 1");
                } else {
                    s.daemon.failure_threshold = *t.get_ref();
                }
            }
        }
        (sink.out.len() == before).then_some(s)
    }
}

/// The state folder a configuration names, read leniently: the
/// `--state-dir` flag, else `[store] path` of the settings file (`config`,
/// or `./pivotwatch.toml` when present), else `.pivotwatch`. Nothing else
/// is validated, so a command can still find a running daemon's control
/// socket while the files on disk have errors.
pub fn state_dir_hint(config: Option<&Path>, state_dir_flag: Option<&Path>) -> PathBuf {
    if let Some(flag) = state_dir_flag {
        return flag.to_path_buf();
    }
    let path = config.map_or_else(|| PathBuf::from("pivotwatch.toml"), Path::to_path_buf);
    let store_path = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("store")?.get("path")?.as_str().map(str::to_string));
    match store_path {
        Some(p) => resolve(path.parent().unwrap_or(Path::new(".")), &p),
        None => PathBuf::from(".pivotwatch"),
    }
}

/// Whether `host` names this machine's loopback interface.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An http(s) URL with a host, or an error at its span.
fn registry_url(v: &Spanned<String>, sink: &mut Sink<'_>) -> Option<url::Url> {
    match url::Url::parse(v.get_ref()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        _ => {
            sink.error(
                Some(v.span()),
                format!(
                    "{:?} is not an http(s) URL with a host; write e.g. \"https://api.example.org\"",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

/// `[registries.*]`: URLs, `stream`, and the API key read from its file or
/// environment variable (never echoed in an error).
fn registries(raw: &RawRegistries, base: &Path, s: &mut Settings, sink: &mut Sink<'_>) {
    let tables = [
        ("companies_house", &raw.companies_house),
        ("gleif", &raw.gleif),
        ("opencorporates", &raw.opencorporates),
    ];
    for (name, table) in tables {
        let Some(t) = table else { continue };
        let out = match name {
            "companies_house" => &mut s.registries.companies_house,
            "gleif" => &mut s.registries.gleif,
            _ => &mut s.registries.opencorporates,
        };
        if let Some(u) = t.base_url.as_ref().and_then(|v| registry_url(v, sink)) {
            out.base_url = u;
        }
        for (key, v) in [
            ("stream_url", t.stream_url.as_ref().map(|v| v.span())),
            ("stream", t.stream.as_ref().map(|v| v.span())),
        ] {
            if let Some(span) = v
                && name != "companies_house"
            {
                sink.error(
                    Some(span),
                    format!("`{key}` is for [registries.companies_house] only: only Companies House has a streaming API"),
                );
            }
        }
        if let Some(u) = t.stream_url.as_ref().and_then(|v| registry_url(v, sink)) {
            out.stream_url = Some(u);
        }
        if let Some(b) = &t.stream {
            out.stream = *b.get_ref();
        }
        if name == "gleif" {
            for v in [
                &t.api_key_file,
                &t.api_key_env,
                &t.stream_api_key_file,
                &t.stream_api_key_env,
            ]
            .into_iter()
            .flatten()
            {
                sink.error(Some(v.span()), "GLEIF needs no API key; remove this line");
            }
            continue;
        }
        out.api_key = read_key(&t.api_key_file, &t.api_key_env, "api_key", base, sink);
        if name == "companies_house" {
            out.stream_key = read_key(
                &t.stream_api_key_file,
                &t.stream_api_key_env,
                "stream_api_key",
                base,
                sink,
            );
        } else {
            for v in [&t.stream_api_key_file, &t.stream_api_key_env]
                .into_iter()
                .flatten()
            {
                sink.error(
                    Some(v.span()),
                    "a stream key is for [registries.companies_house] only",
                );
            }
        }
    }
}

/// An API key from `{what}_file` (relative to the settings file) or
/// `{what}_env`; errors never show the key.
fn read_key(
    file: &Option<Spanned<String>>,
    env: &Option<Spanned<String>>,
    what: &str,
    base: &Path,
    sink: &mut Sink<'_>,
) -> Option<crate::registry::Secret> {
    match (file, env) {
        (Some(f), Some(_)) => {
            sink.error(
                Some(f.span()),
                format!("set {what}_file or {what}_env, not both"),
            );
            None
        }
        (Some(f), None) => {
            let path = resolve(base, f.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(k) if !k.trim().is_empty() => Some(crate::registry::Secret::new(&k)),
                Ok(_) => {
                    sink.error(
                        Some(f.span()),
                        format!("the API key file {} is empty", path.display()),
                    );
                    None
                }
                Err(e) => {
                    sink.error(
                        Some(f.span()),
                        format!("cannot read the API key file {}: {e}", path.display()),
                    );
                    None
                }
            }
        }
        (None, Some(env)) => match std::env::var(env.get_ref()) {
            Ok(k) if !k.trim().is_empty() => Some(crate::registry::Secret::new(&k)),
            _ => {
                sink.error(
                    Some(env.span()),
                    format!(
                        "the environment variable {} holding the API key is not set (or empty)",
                        env.get_ref()
                    ),
                );
                None
            }
        },
        (None, None) => None,
    }
}

/// The registries' published rate limits as per-host spacing, unless
/// `[hosts."…"]` says otherwise: Companies House allows 600 requests per
/// 5 minutes (one per 0.5 s), GLEIF about 60 a minute (one per second);
/// never faster than `[http] per_host_interval`.
fn registry_host_limits(s: &mut Settings) {
    let limits = [
        (
            &s.registries.companies_house.base_url,
            Duration::from_millis(500),
        ),
        (&s.registries.gleif.base_url, Duration::from_secs(1)),
    ];
    let mut add = Vec::new();
    for (url, interval) in limits {
        if let Some(host) = url.host_str() {
            add.push((host.to_ascii_lowercase(), interval));
        }
    }
    let global = s.http.per_host_interval;
    for (host, interval) in add {
        let h = s.hosts.entry(host).or_default();
        if h.interval.is_none() {
            h.interval = Some(interval.max(global));
        }
    }
}
