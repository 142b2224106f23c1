//! `check`: validates the settings, every watchlist and the reference data.

use std::io::Write;

use super::AppError;
use crate::config::{Config, ConfigErrors, LoadOptions};

pub(super) fn check(opts: &LoadOptions, out: &mut impl Write) -> Result<u8, AppError> {
    let (config, warnings) = Config::load_checked(opts)?;
    for w in &warnings {
        note!("{w}");
    }
    // Reference data (shipped, plus `[reference] dir`) is configuration too.
    if let Err(e) = crate::config::load_reference(config.settings.reference_dir.as_deref()) {
        return Err(AppError::Config(ConfigErrors(vec![
            crate::config::Diagnostic {
                path: config.settings.reference_dir.clone().unwrap_or_default(),
                line: 0,
                col: 0,
                message: crate::text::chain(&e),
            },
        ])));
    }
    let entities = config.entities().count();
    let sources = config.sources().count();
    writeln!(
        out,
        "ok: settings {}, {} watchlist(s), {entities} entities, {sources} sources",
        config
            .settings
            .file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(built-in defaults)".into()),
        config.watchlists.len()
    )?;
    Ok(0)
}
