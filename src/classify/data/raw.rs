//! The serde shapes of the TOML reference files, `families.toml` and `manufacturers.toml`.
//!
//! Strings that an error may point at are [`Spanned`], so [`super::merge`] can give every
//! value its `path:line:col`.
//!
//! **Invariants:** every table denies unknown fields (a misspelt key is a syntax error at
//! its line, never ignored); a field that may be left out has its default here, so the
//! shipped files and an analyst's file are read by the same rules.

use serde::Deserialize;
use toml::Spanned;

/// `manufacturers.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ManufacturersFile {
    #[serde(default)]
    pub(super) brand_placeholders: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) manufacturer: Vec<RawManufacturer>,
}

/// One `[[manufacturer]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManufacturer {
    pub(super) canonical: Spanned<String>,
    #[serde(default)]
    pub(super) country: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) coalition: Option<bool>,
    #[serde(default)]
    pub(super) aliases: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) brand_only: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) legacy: Vec<RawLegacy>,
    #[serde(default)]
    pub(super) pattern: Vec<RawPattern>,
    #[serde(default)]
    pub(super) note: Option<String>,
    #[serde(default)]
    pub(super) extend: bool,
}

/// One `[[manufacturer.legacy]]`: an acquired or renamed brand.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLegacy {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) aliases: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) brand_only: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) relation: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) year: Option<u16>,
    #[serde(default)]
    pub(super) note: Option<String>,
}

/// One `[[manufacturer.pattern]]` or `[[pattern]]` (generic, in `families.toml`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPattern {
    pub(super) pattern: Spanned<String>,
    pub(super) family: Spanned<String>,
    #[serde(default)]
    pub(super) hs6: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) brand: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) shared: bool,
    #[serde(default)]
    pub(super) text: Option<bool>,
    #[serde(default)]
    pub(super) priority: Option<i32>,
    #[serde(default)]
    pub(super) note: Option<String>,
}

/// `families.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FamiliesFile {
    #[serde(default)]
    pub(super) scrap: Option<RawScrap>,
    #[serde(default)]
    pub(super) family: Vec<RawFamily>,
    #[serde(default)]
    pub(super) pattern: Vec<RawPattern>,
}

/// `[scrap]`: words that mark an item as scrap.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScrap {
    #[serde(default)]
    pub(super) markers: Vec<Spanned<String>>,
}

/// One `[[family]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFamily {
    pub(super) id: Spanned<String>,
    #[serde(default)]
    pub(super) label: Option<String>,
    #[serde(default)]
    pub(super) hs6: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) keywords: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) exclude: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) priority: Option<i32>,
    #[serde(default)]
    pub(super) carrier: Option<bool>,
    #[serde(default)]
    pub(super) extend: bool,
}
