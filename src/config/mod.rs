//! Settings (`pivotwatch.toml`) and watchlists (`watchlists/*.toml`):
//! parsing, validation, and errors as `path:line:col: message`.
//!
//! **Architecture Invariant:** reads files, nothing else. A configuration
//! either loads whole or not at all: any error in any file fails the load
//! and every error found is reported, so a broken edit never leaves a
//! half-loaded configuration.

mod diag;
pub mod settings;
mod watchlist;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use url::Url;

pub use diag::{ConfigErrors, Diagnostic};
pub use settings::{DeliveryMode, HttpSettings, Settings, SmtpSecurity, SmtpSettings, Subscriber};
pub use watchlist::{DEFAULT_MAX_PAGES, DEFAULT_SCHEDULE};

use crate::extract::ExtractSpec;
use crate::schedule::Schedule;

/// What a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A company-registry record.
    Registry,
    /// A supplier catalogue (item rows).
    Catalogue,
    /// Any other page.
    Page,
}

/// One watchlist file.
#[derive(Debug, Clone)]
pub struct Watchlist {
    /// `[watchlist] name` (default: the file name without `.toml`).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Free text.
    pub description: String,
    /// Receive source-broken notices.
    pub maintainers: Vec<String>,
    /// Tags applied to every entity.
    pub tags: Vec<String>,
    /// Timezone in which schedules are evaluated.
    pub timezone: chrono_tz::Tz,
    /// The entities watched.
    pub entities: Vec<Entity>,
    /// Rule thresholds, switches and custom rules (`[rules.ID]`, `[[rule]]`).
    pub rules: crate::detect::RuleConfig,
}

/// A company being watched.
#[derive(Debug, Clone)]
pub struct Entity {
    /// Unique id (across all watchlists).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Other names.
    pub aliases: Vec<String>,
    /// ISO country code of registration.
    pub jurisdiction: Option<String>,
    /// Registry identifiers (`ice`, `rc`, `company_number`, `lei` …).
    pub identifiers: BTreeMap<String, String>,
    /// Declared/baseline activity codes, `SCHEME:CODE`.
    pub activity: Vec<String>,
    /// Tags (subscribers filter on them).
    pub tags: Vec<String>,
    /// Name of the watchlist that declares it.
    pub watchlist: String,
    /// Its sources.
    pub sources: Vec<Source>,
}

/// One configured target of an entity.
#[derive(Debug, Clone)]
pub struct Source {
    /// Id, unique within the entity.
    pub id: String,
    /// Owning entity id.
    pub entity: String,
    /// What it is.
    pub kind: SourceKind,
    /// The (first) URL.
    pub url: Url,
    /// When it is checked.
    pub schedule: Schedule,
    /// How bodies become records (shared by every source with the same
    /// spec).
    pub spec: Arc<ExtractSpec>,
    /// Per-source override of `[http] allow_private_addresses`.
    pub allow_private_addresses: Option<bool>,
}

impl Source {
    /// `entity/source`, the key used on the command line and in the store.
    pub fn key(&self) -> String {
        format!("{}/{}", self.entity, self.id)
    }
}

/// Where to read the configuration from (the global flags).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config`; `None` reads `./pivotwatch.toml` when present.
    pub config: Option<PathBuf>,
    /// `--watchlists`; default `./watchlists`.
    pub watchlists: Option<PathBuf>,
    /// `--state-dir`; wins over `[store] path`.
    pub state_dir: Option<PathBuf>,
}

/// Settings and every watchlist, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings.
    pub settings: Settings,
    /// Watchlists, in file-name order.
    pub watchlists: Vec<Watchlist>,
}

impl Config {
    /// Loads settings and watchlists; on any error returns every error.
    pub fn load(opts: &LoadOptions) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let settings = load_settings(opts, &mut errors);
        let dir = opts
            .watchlists
            .clone()
            .unwrap_or_else(|| PathBuf::from("watchlists"));
        let watchlists = load_watchlists(&dir, &mut errors);
        release_parse_memory();
        // Report in file order; each file's errors by position.
        errors.sort_by(|a, b| (&a.path, a.line, a.col).cmp(&(&b.path, b.line, b.col)));
        match settings {
            Some(settings) if errors.is_empty() => Ok(Config {
                settings,
                watchlists,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// Loads and validates only the settings file (for commands that need
    /// no watchlists, such as `probe`).
    pub fn load_settings(opts: &LoadOptions) -> Result<Settings, ConfigErrors> {
        let mut errors = Vec::new();
        match load_settings(opts, &mut errors) {
            Some(s) if errors.is_empty() => Ok(s),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// Every entity of every watchlist.
    pub fn entities(&self) -> impl Iterator<Item = &Entity> {
        self.watchlists.iter().flat_map(|w| w.entities.iter())
    }

    /// An entity by id.
    pub fn entity(&self, id: &str) -> Option<&Entity> {
        self.entities().find(|e| e.id == id)
    }

    /// Every source, with its entity.
    pub fn sources(&self) -> impl Iterator<Item = (&Entity, &Source)> {
        self.entities()
            .flat_map(|e| e.sources.iter().map(move |s| (e, s)))
    }

    /// The watchlist an entity belongs to.
    pub fn watchlist_of(&self, entity: &Entity) -> Option<&Watchlist> {
        self.watchlists.iter().find(|w| w.name == entity.watchlist)
    }
}

/// Hands the memory the TOML parse used back to the operating system.
///
/// A watchlist file's spanned tree and token list take ~24x its size while
/// it is parsed (110 MB for a 4.5 MB file of 5000 entities) and are freed
/// before the next file. glibc keeps freed memory of the main thread's
/// arena mapped, and the checks that follow allocate from the worker
/// threads' arenas, so without this the parse's peak stays in the
/// process's resident set for the whole run. (At 100k sources, this and
/// streaming `once`'s reports together took a no-change pass from 299.5
/// to 228.7 MiB; BENCHMARKS.md.)
fn release_parse_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it
    // takes no pointer and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn read(path: &Path, errors: &mut Vec<Diagnostic>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(Diagnostic {
                path: path.to_path_buf(),
                line: 0,
                col: 0,
                message: format!("cannot read file: {e}"),
            });
            None
        }
    }
}

fn load_settings(opts: &LoadOptions, errors: &mut Vec<Diagnostic>) -> Option<Settings> {
    let path = match &opts.config {
        Some(p) => p.clone(),
        None => {
            let p = PathBuf::from("pivotwatch.toml");
            if !p.exists() {
                return Some(Settings::defaults(opts.state_dir.as_deref()));
            }
            p
        }
    };
    let text = read(&path, errors)?;
    let mut sink = diag::Sink::new(&path, &text);
    let s = Settings::parse(&path, &text, opts.state_dir.as_deref(), &mut sink);
    errors.extend(sink.out);
    s
}

/// Loads every `*.toml` in `dir`, sorted by name; entity ids must be unique
/// across files.
fn load_watchlists(dir: &Path, errors: &mut Vec<Diagnostic>) -> Vec<Watchlist> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(Diagnostic {
                path: dir.to_path_buf(),
                line: 0,
                col: 0,
                message: format!(
                    "cannot read the watchlist folder ({e}); create it or pass --watchlists DIR"
                ),
            });
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut interner = watchlist::Interner::default();
    for path in files {
        let Some(text) = read(&path, errors) else {
            continue;
        };
        let mut sink = diag::Sink::new(&path, &text);
        let wl = watchlist::parse(&path, &text, &mut sink, &mut interner);
        if let Some(wl) = &wl {
            if let Some(prev) = names.insert(wl.name.clone(), path.clone()) {
                sink.error(
                    None,
                    format!(
                        "watchlist name {:?} is also used by {}",
                        wl.name,
                        prev.display()
                    ),
                );
            }
            for e in &wl.entities {
                if let Some(prev) = seen.insert(e.id.clone(), path.clone()) {
                    let off = find_id_offset(&text, &e.id);
                    sink.error(
                        off.map(|o| o..o + 1),
                        format!(
                            "duplicate entity id {:?}: also declared in {}",
                            e.id,
                            prev.display()
                        ),
                    );
                }
            }
        }
        let failed = !sink.out.is_empty();
        errors.extend(sink.out);
        if let (Some(wl), false) = (wl, failed) {
            out.push(wl);
        }
    }
    out
}

/// Byte offset of `id = "<id>"` in a file (for cross-file duplicate errors).
fn find_id_offset(text: &str, id: &str) -> Option<usize> {
    let needle = format!("\"{id}\"");
    text.match_indices(&needle)
        .map(|(i, _)| i)
        .find(|&i| text[..i].trim_end().ends_with('=') && text[..i].contains("id"))
        .map(|i| i + 1)
}
