//! Settings (`pivotwatch.toml`) and watchlists (`watchlists/*.toml`):
//! parsing, validation, and errors as `path:line:col: message`.
//!
//! **Architecture Invariant:** reads files, nothing else. A configuration
//! either loads whole or not at all: any error in any file fails the load
//! and every error found is reported, so a broken edit never leaves a
//! half-loaded configuration.

mod chunks;
mod diag;
mod reference;
pub mod settings;
mod spec;
mod watchlist;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use diag::{ConfigErrors, Diagnostic};
pub use reference::load_reference;
pub use settings::{DeliveryMode, HttpSettings, Settings, SmtpSecurity, SmtpSettings, Subscriber};
pub(crate) use spec::SpecBuilder;
pub use watchlist::{ADAPTERS, parse_adapter};
pub use watchlist::{DEFAULT_MAX_PAGES, DEFAULT_SCHEDULE};

/// The watched nouns live in [`crate::model`]; re-exported here for the
/// paths that name them through `config`.
pub use crate::model::{Entity, Source, SourceKind};

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

/// Where to read the configuration from (the global flags).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config`; `None` reads `./pivotwatch.toml` when present.
    pub config: Option<PathBuf>,
    /// `--watchlists`; default `./watchlists`.
    pub watchlists: Option<PathBuf>,
    /// `--state-dir`; wins over `[store] path`.
    pub state_dir: Option<PathBuf>,
    /// How mail addresses (`[email] from`, subscribers' `to`, watchlists'
    /// `maintainers`) are validated while loading: the binary passes
    /// `alert::check_address`, lettre's own parser, so what `check`
    /// accepts is what alert can send (config knows no mail crate).
    /// `None` checks no address at load; alert still refuses a bad one
    /// when it builds the mail.
    pub check_address: Option<AddressCheck>,
}

/// Validates one mail address; the error says why and how to write one.
pub type AddressCheck = fn(&str) -> Result<(), String>;

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
    /// Warnings (see [`Config::load_checked`]) are logged.
    pub fn load(opts: &LoadOptions) -> Result<Config, ConfigErrors> {
        let (config, warnings) = Config::load_checked(opts)?;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        Ok(config)
    }

    /// [`Config::load`], returning the warnings instead of logging them:
    /// a subscriber filter on a tag that no watchlist or entity has (it
    /// matches nothing yet; not an error, because tags come and go with
    /// the entities that carry them, and removing the last entity with a
    /// tag must not stop the daemon from starting).
    pub fn load_checked(opts: &LoadOptions) -> Result<(Config, Vec<Diagnostic>), ConfigErrors> {
        let p = load_parts(opts);
        let mut errors = p.settings_errors;
        errors.extend(p.watchlist_errors);
        errors.extend(p.ref_errors);
        sort(&mut errors);
        match p.settings {
            Some(settings) if errors.is_empty() => Ok((
                Config {
                    settings,
                    watchlists: p.watchlists,
                },
                p.warnings,
            )),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// For the read commands (`findings`, `history`, `diff`, `explain`,
    /// `outbox`), which read the store: the settings must be valid, but a
    /// watchlist file with errors is left out instead of failing the
    /// load. Returns the configuration and the errors that were skipped
    /// (for a warning); fails only when the settings have errors.
    pub fn load_lenient(opts: &LoadOptions) -> Result<(Config, Vec<Diagnostic>), ConfigErrors> {
        let p = load_parts(opts);
        let mut skipped = p.watchlist_errors;
        skipped.extend(p.ref_errors);
        sort(&mut skipped);
        match p.settings {
            Some(settings) if p.settings_errors.is_empty() => Ok((
                Config {
                    settings,
                    watchlists: p.watchlists,
                },
                skipped,
            )),
            _ => {
                let mut errors = p.settings_errors;
                errors.extend(skipped);
                sort(&mut errors);
                Err(ConfigErrors(errors))
            }
        }
    }

    /// Loads and validates only the settings file (for commands that need
    /// no watchlists, such as `probe`).
    pub fn load_settings(opts: &LoadOptions) -> Result<Settings, ConfigErrors> {
        let mut errors = Vec::new();
        match load_settings(opts, &mut errors, &mut Vec::new()) {
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

/// Report in file order; each file's errors by position.
fn sort(errors: &mut [Diagnostic]) {
    errors.sort_by(|a, b| (&a.path, a.line, a.col).cmp(&(&b.path, b.line, b.col)));
}

/// Everything one load found, before deciding what is fatal.
struct Parts {
    settings: Option<Settings>,
    settings_errors: Vec<Diagnostic>,
    /// The watchlist files without errors.
    watchlists: Vec<Watchlist>,
    watchlist_errors: Vec<Diagnostic>,
    /// Subscriber filters naming what no watchlist has (in the settings file).
    ref_errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

fn load_parts(opts: &LoadOptions) -> Parts {
    let mut settings_errors = Vec::new();
    let mut refs = Vec::new();
    let settings = load_settings(opts, &mut settings_errors, &mut refs);
    let dir = opts
        .watchlists
        .clone()
        .unwrap_or_else(|| PathBuf::from("watchlists"));
    let mut watchlist_errors = Vec::new();
    // Without valid settings, whether private addresses are allowed is
    // unknown: that check waits until the settings are fixed.
    let allow_private = settings.as_ref().map(|s| s.http.allow_private_addresses);
    let (mut watchlists, known) = load_watchlists(
        &dir,
        allow_private,
        opts.check_address,
        &mut watchlist_errors,
    );
    release_parse_memory();
    // Adapter sources' URLs come from `[registries.*] base_url`.
    if let Some(s) = &settings {
        for src in watchlists
            .iter_mut()
            .flat_map(|w| w.entities.iter_mut())
            .flat_map(|e| e.sources.iter_mut())
        {
            if let Some(a) = &src.adapter {
                src.url = s.registries.url(a);
            }
        }
    }
    let mut ref_errors = Vec::new();
    let mut warnings = Vec::new();
    if let Some(known) = known {
        check_names(&refs, &known, &mut ref_errors, &mut warnings);
    }
    Parts {
        settings,
        settings_errors,
        watchlists,
        watchlist_errors,
        ref_errors,
        warnings,
    }
}

/// The names subscriber filters may use, from every watchlist file read
/// (those with errors too, so one typo does not turn into a second error
/// in the settings file).
#[derive(Debug, Default)]
struct Known {
    watchlists: std::collections::BTreeSet<String>,
    tags: std::collections::BTreeSet<String>,
    /// Custom rule ids (`[[rule]] id`); the built-in ones are
    /// [`crate::detect::BUILTIN_RULES`].
    rules: std::collections::BTreeSet<String>,
}

impl Known {
    fn add(&mut self, wl: &Watchlist) {
        self.watchlists.insert(wl.name.clone());
        self.tags.extend(wl.tags.iter().cloned());
        for e in &wl.entities {
            self.tags.extend(e.tags.iter().cloned());
        }
        self.rules
            .extend(wl.rules.custom.iter().map(|r| r.id.clone()));
    }
}

fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = names
        .into_iter()
        .map(|n| format!("\"{}\"", n.as_ref()))
        .collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

/// Subscriber filters against the loaded watchlists: an unknown rule or
/// watchlist name is an error (the subscriber would silently get nothing
/// it asked for); an unknown tag is a warning (see [`Config::load_checked`]).
fn check_names(
    refs: &[settings::NameRef],
    known: &Known,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) {
    use settings::NameKind;
    for r in refs {
        let mut d = r.at.clone();
        let sub = &r.subscriber;
        let name = &r.name;
        match r.kind {
            NameKind::Rule => {
                if crate::detect::BUILTIN_RULES.contains(&name.as_str())
                    || known.rules.contains(name)
                {
                    continue;
                }
                let custom = if known.rules.is_empty() {
                    String::new()
                } else {
                    format!("; custom rules: {}", list(&known.rules))
                };
                d.message = format!(
                    "subscriber {sub:?}: unknown rule {name:?}; the built-in rules are {}{custom}",
                    list(crate::detect::BUILTIN_RULES)
                );
                errors.push(d);
            }
            NameKind::Watchlist => {
                if known.watchlists.contains(name) {
                    continue;
                }
                d.message = format!(
                    "subscriber {sub:?}: no watchlist is named {name:?}; the watchlists are {}",
                    list(&known.watchlists)
                );
                errors.push(d);
            }
            NameKind::Tag => {
                if known.tags.contains(name) {
                    continue;
                }
                d.message = format!(
                    "warning: subscriber {sub:?}: no watchlist or entity has the tag {name:?}, so this filter matches nothing yet; tags in use: {}",
                    list(&known.tags)
                );
                warnings.push(d);
            }
        }
    }
}

/// Hands the memory the TOML parse used back to the operating system.
///
/// toml's spanned tree and token list take ~24x the text they parse and
/// are freed before the next part or file: a few MB for a part of a large
/// watchlist (`chunks.rs`), but 110 MB for a 4.5 MB file that cannot be
/// cut and is parsed whole. glibc keeps freed memory of the main thread's
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

fn load_settings(
    opts: &LoadOptions,
    errors: &mut Vec<Diagnostic>,
    refs: &mut Vec<settings::NameRef>,
) -> Option<Settings> {
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
    let mut sink = diag::Sink::new(&path, &text).with_address_check(opts.check_address);
    let s = Settings::parse(&path, &text, opts.state_dir.as_deref(), &mut sink, refs);
    errors.extend(sink.out);
    s
}

/// Loads every `*.toml` in `dir`, sorted by name; entity ids must be unique
/// across files. Returns the files without errors and the names subscriber
/// filters may use (`None` when a file could not be read or parsed at all,
/// so its names are unknown). A duplicate id is reported whatever other
/// errors either file has.
fn load_watchlists(
    dir: &Path,
    allow_private: Option<bool>,
    check_address: Option<AddressCheck>,
    errors: &mut Vec<Diagnostic>,
) -> (Vec<Watchlist>, Option<Known>) {
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
            return (Vec::new(), None);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    let mut known = Some(Known::default());
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut interner = watchlist::Interner::default();
    for path in files {
        let Some(text) = read(&path, errors) else {
            known = None;
            continue;
        };
        let mut sink = diag::Sink::new(&path, &text).with_address_check(check_address);
        let wl = watchlist::parse(&path, &text, &mut sink, &mut interner, allow_private);
        match &wl {
            None => known = None,
            Some(wl) => {
                if let Some(k) = known.as_mut() {
                    k.add(wl);
                }
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
                    if let Some(prev) = seen.get(&e.id)
                        && prev != &path
                    {
                        let off = find_id_offset(&text, &e.id);
                        sink.error(
                            off.map(|o| o..o + 1),
                            format!(
                                "duplicate entity id {:?}: also declared in {}",
                                e.id,
                                prev.display()
                            ),
                        );
                    } else {
                        seen.insert(e.id.clone(), path.clone());
                    }
                }
            }
        }
        let failed = !sink.out.is_empty();
        errors.extend(sink.out);
        if let (Some(wl), false) = (wl, failed) {
            out.push(wl);
        }
    }
    (out, known)
}

/// Byte offset of `id = "<id>"` in a file (for cross-file duplicate errors).
fn find_id_offset(text: &str, id: &str) -> Option<usize> {
    let needle = format!("\"{id}\"");
    text.match_indices(&needle)
        .map(|(i, _)| i)
        .find(|&i| text[..i].trim_end().ends_with('=') && text[..i].contains("id"))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WL: &str = r#"[watchlist]
name = "maghreb"
tags = ["north-africa"]

[[rule]]
id = "dual_use_words"
keywords = ["gyroscope"]

[[entity]]
id = "atlas"
name = "Atlas"
tags = ["scrap"]
[[entity.source]]
id = "reg"
url = "https://registry.example/atlas"
[entity.source.fields]
name = "h1"
"#;

    /// Writes `pivotwatch.toml` and the watchlist files; returns the options.
    fn files(dir: &Path, settings: &str, watchlists: &[(&str, &str)]) -> LoadOptions {
        std::fs::create_dir_all(dir.join("w")).unwrap();
        std::fs::write(dir.join("pivotwatch.toml"), settings).unwrap();
        for (name, text) in watchlists {
            std::fs::write(dir.join("w").join(name), text).unwrap();
        }
        LoadOptions {
            config: Some(dir.join("pivotwatch.toml")),
            watchlists: Some(dir.join("w")),
            state_dir: None,
            check_address: None,
        }
    }

    /// `line:col` of the first `needle` in `text`.
    fn at(text: &str, needle: &str) -> (usize, usize) {
        let off = text.find(needle).expect("needle");
        let line = text[..off].matches('\n').count() + 1;
        let col = text[..off].rsplit('\n').next().unwrap().chars().count() + 1;
        (line, col)
    }

    fn errors(opts: &LoadOptions) -> Vec<Diagnostic> {
        Config::load(opts).expect_err("should fail").0
    }

    #[test]
    fn subscriber_rules_and_watchlists_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let settings = r#"[[subscriber]]
name = "desk"
to = ["desk@example.org"]
rules = ["profile_missmatch", "dual_use_words"]
exclude_rules = ["items_added", "nope"]
watchlists = ["maghreb", "maghrib"]
"#;
        let opts = files(dir.path(), settings, &[("m.toml", WL)]);
        let errs = errors(&opts);
        assert_eq!(errs.len(), 3, "{errs:?}");
        let (l, c) = at(settings, "\"profile_missmatch\"");
        assert_eq!((errs[0].line, errs[0].col), (l, c));
        assert!(
            errs[0]
                .message
                .contains("unknown rule \"profile_missmatch\"")
        );
        // Naming the known rules, built-in and custom.
        assert!(
            errs[0].message.contains("\"profile_mismatch\""),
            "{}",
            errs[0]
        );
        assert!(
            errs[0].message.contains("\"dual_use_words\""),
            "{}",
            errs[0]
        );
        assert_eq!((errs[1].line, errs[1].col), at(settings, "\"nope\""));
        assert_eq!((errs[2].line, errs[2].col), at(settings, "\"maghrib\""));
        assert!(
            errs[2]
                .message
                .contains("no watchlist is named \"maghrib\"; the watchlists are \"maghreb\""),
            "{}",
            errs[2]
        );
        assert!(errs[0].path.ends_with("pivotwatch.toml"));
    }

    #[test]
    fn an_unknown_tag_is_a_warning_with_its_location() {
        let dir = tempfile::tempdir().unwrap();
        let settings = r#"[[subscriber]]
name = "desk"
to = ["desk@example.org"]
tags = ["scrap", "north-africa", "scarp"]
"#;
        let opts = files(dir.path(), settings, &[("m.toml", WL)]);
        let (_, warnings) = Config::load_checked(&opts).expect("tags never fail the load");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(
            (warnings[0].line, warnings[0].col),
            at(settings, "\"scarp\"")
        );
        assert!(
            warnings[0]
                .message
                .starts_with("warning: subscriber \"desk\"")
        );
        assert!(warnings[0].message.contains("\"scrap\""));
    }

    #[test]
    fn names_in_an_unparsable_watchlist_are_not_second_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let settings =
            "[[subscriber]]\nname = \"d\"\nto = [\"d@example.org\"]\nwatchlists = [\"other\"]\n";
        let opts = files(
            dir.path(),
            settings,
            &[("m.toml", WL), ("other.toml", "[watchlist\n")],
        );
        let errs = errors(&opts);
        assert_eq!(errs.len(), 1, "only the syntax error: {errs:?}");
        assert!(errs[0].path.ends_with("other.toml"));
    }

    #[test]
    fn cross_file_duplicates_are_reported_with_the_other_errors() {
        let dir = tempfile::tempdir().unwrap();
        // The second file has another error besides the duplicate id.
        let second = WL
            .replace("maghreb", "second")
            .replace("dual_use_words", "other_words")
            .replace("https://registry.example/atlas", "ftp://x.example/");
        let opts = files(dir.path(), "", &[("a.toml", WL), ("b.toml", &second)]);
        let errs = errors(&opts);
        let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(
            msgs.iter().any(|m| m.contains("scheme \"ftp\"")),
            "{msgs:#?}"
        );
        let (l, c) = at(&second, "\"atlas\"");
        let dup = errs
            .iter()
            .find(|d| d.message.contains("duplicate entity id \"atlas\""))
            .unwrap_or_else(|| panic!("no duplicate error in {msgs:#?}"));
        assert!(dup.path.ends_with("b.toml"));
        assert_eq!((dup.line, dup.col), (l, c + 1));
        // And when the first file is the broken one.
        let first = WL.replace("https://registry.example/atlas", "ftp://x.example/");
        let ok_second = WL
            .replace("maghreb", "second")
            .replace("dual_use_words", "other_words");
        let opts = files(
            dir.path(),
            "",
            &[("a.toml", &first), ("b.toml", &ok_second)],
        );
        let errs = errors(&opts);
        assert!(
            errs.iter()
                .any(|d| d.path.ends_with("b.toml") && d.message.contains("duplicate entity id")),
            "{errs:?}"
        );
    }

    #[test]
    fn ip_literal_private_urls_are_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let bad = [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/x",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://192.168.1.1/",
            "http://[::ffff:127.0.0.1]/",
        ];
        for url in bad {
            let wl = WL.replace("https://registry.example/atlas", url);
            let opts = files(dir.path(), "", &[("m.toml", &wl)]);
            let errs = errors(&opts);
            assert_eq!(errs.len(), 1, "{url}: {errs:?}");
            assert_eq!(
                (errs[0].line, errs[0].col),
                at(&wl, &format!("\"{url}\"")),
                "{url}"
            );
            assert!(
                errs[0].message.contains("allow_private_addresses"),
                "{}",
                errs[0]
            );
            // Allowed on the source, or for all sources in [http].
            let on_source = wl.replace(
                &format!("url = \"{url}\""),
                &format!("url = \"{url}\"\nallow_private_addresses = true"),
            );
            let opts = files(dir.path(), "", &[("m.toml", &on_source)]);
            Config::load(&opts).unwrap_or_else(|e| panic!("{url}: {e}"));
            let opts = files(
                dir.path(),
                "[http]\nallow_private_addresses = true\n",
                &[("m.toml", &wl)],
            );
            Config::load(&opts).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        let meta = errors(&files(
            dir.path(),
            "",
            &[(
                "m.toml",
                &WL.replace("https://registry.example/atlas", bad[0]),
            )],
        ));
        assert!(meta[0].message.contains("metadata"), "{}", meta[0]);
        // A public literal is fine, and host names are left to the guard
        // (what they resolve to is known only at fetch time).
        for url in ["http://8.8.8.8/", "http://localhost:8080/"] {
            let wl = WL.replace("https://registry.example/atlas", url);
            Config::load(&files(dir.path(), "", &[("m.toml", &wl)])).expect(url);
        }
    }

    #[test]
    fn lenient_load_leaves_out_broken_watchlists_only() {
        let dir = tempfile::tempdir().unwrap();
        let broken = "[watchlist]\nname = \"b\"\n[[entity]]\nid = \"x\"\nname = \"X\"\n";
        let opts = files(dir.path(), "", &[("a.toml", WL), ("b.toml", broken)]);
        let (config, skipped) = Config::load_lenient(&opts).expect("settings are fine");
        assert_eq!(config.watchlists.len(), 1);
        assert!(config.entity("atlas").is_some());
        assert!(!skipped.is_empty() && skipped.iter().all(|d| d.path.ends_with("b.toml")));
        // Broken settings still fail.
        let opts = files(
            dir.path(),
            "[http]\ntimeout = \"soon\"\n",
            &[("a.toml", WL)],
        );
        assert!(Config::load_lenient(&opts).is_err());
    }
}
