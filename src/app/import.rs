//! `import FILE.csv`: watchlist entities from a spreadsheet. Each row
//! (name, country, company number, LEI, website, tags, …) becomes an
//! `[[entity]]` with the right adapter sources (Companies House for a UK
//! number, OpenCorporates for another country's, GLEIF for an LEI) and a
//! `kind = "site"` source for the website (the whole site, no selectors). Ids are
//! derived from the name and made unique against every watchlist; rows
//! that repeat an earlier row or a watched entity are skipped, saying so.
//! A file with any bad row writes nothing and reports every error as
//! `path:line:col`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::AppError;
use crate::config::{ConfigErrors, Diagnostic};

/// The columns understood, by their normalised header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Col {
    Id,
    Name,
    Country,
    CompanyNumber,
    Lei,
    Website,
    Tags,
    Aliases,
}

fn column(header: &str) -> Option<Col> {
    let h: String = header
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    Some(match h.as_str() {
        "id" => Col::Id,
        "name" | "company" | "company name" | "entity" | "legal name" => Col::Name,
        "country" | "jurisdiction" | "country code" => Col::Country,
        "company number"
        | "companies house number"
        | "registration number"
        | "crn"
        | "number"
        | "company no"
        | "reg no" => Col::CompanyNumber,
        "lei" | "lei code" => Col::Lei,
        "website" | "url" | "site" | "web" => Col::Website,
        "tags" | "tag" => Col::Tags,
        "aliases" | "alias" | "other names" => Col::Aliases,
        _ => return None,
    })
}

/// One row, cleaned, with where each cell starts.
#[derive(Debug, Default)]
struct Row {
    line: usize,
    cells: BTreeMap<Col, (String, usize)>,
}

impl Row {
    fn get(&self, c: Col) -> Option<&str> {
        self.cells
            .get(&c)
            .map(|(v, _)| v.as_str())
            .filter(|v| !v.is_empty())
    }
    fn col(&self, c: Col) -> usize {
        self.cells.get(&c).map(|(_, col)| *col).unwrap_or(1)
    }
}

/// What is already watched: entity ids, company numbers and LEIs.
#[derive(Debug, Default)]
struct Watched {
    ids: BTreeSet<String>,
    /// identifier → entity id.
    identifiers: BTreeMap<String, String>,
}

/// Reads every watchlist file of `dir` loosely (a broken one adds what
/// parses): enough to keep ids unique and skip what is watched.
fn watched(dir: &Path) -> Watched {
    let mut w = Watched::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return w;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let Ok(table) = text.parse::<toml::Table>() else {
            continue;
        };
        for ent in table
            .get("entity")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let Some(id) = ent.get("id").and_then(|v| v.as_str()) else {
                continue;
            };
            w.ids.insert(id.to_string());
            let mut note = |k: &str, v: Option<&toml::Value>| {
                if let Some(v) = v.and_then(|v| v.as_str()) {
                    w.identifiers
                        .insert(format!("{k}:{}", v.to_uppercase()), id.to_string());
                }
            };
            if let Some(ids) = ent.get("identifiers") {
                note("company_number", ids.get("company_number"));
                note("lei", ids.get("lei"));
            }
            for s in ent
                .get("source")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                note("company_number", s.get("company_number"));
                note("lei", s.get("lei"));
            }
        }
    }
    w
}

/// `,`, `;` or tab: whichever the header line has most of (outside quotes).
fn sniff_delimiter(text: &str) -> u8 {
    let first = text.lines().next().unwrap_or_default();
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for b in first.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(c) = counts.iter_mut().find(|(d, _)| *d == b) {
            c.1 += 1;
        }
    }
    counts
        .iter()
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| *n > 0)
        .map_or(b',', |(d, _)| *d)
}

/// The 1-based character column where each field of `line` starts.
fn field_columns(line: &str, delim: u8) -> Vec<usize> {
    let mut out = vec![1];
    let mut quoted = false;
    for (chars, (_, c)) in line.char_indices().enumerate() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && c as u32 == u32::from(delim) {
            out.push(chars + 2);
        }
    }
    out
}

/// A slug of the name: ASCII letters and digits, `-` between words.
fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        let c = match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            c => c,
        };
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-');
    s.chars()
        .take(60)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// What one import produced: the TOML text and what was skipped.
#[derive(Debug, Default)]
struct Plan {
    toml: String,
    entities: usize,
    notes: Vec<String>,
}

fn plan(path: &Path, text: &str, watched: &mut Watched) -> Result<Plan, Vec<Diagnostic>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let delim = sniff_delimiter(text);
    let mut errors = Vec::new();
    let err = |line: usize, col: usize, message: String| Diagnostic {
        path: path.to_path_buf(),
        line,
        col,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delim)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(vec![err(1, 1, format!("cannot read the header row: {e}"))]),
    };
    let header_cols = field_columns(text.lines().next().unwrap_or_default(), delim);
    let mut cols: Vec<Option<Col>> = Vec::new();
    let mut seen_cols = BTreeSet::new();
    for (i, h) in headers.iter().enumerate() {
        let c = column(h);
        if let Some(c) = c
            && !seen_cols.insert(c)
        {
            errors.push(err(
                1,
                header_cols.get(i).copied().unwrap_or(1),
                format!("column {h:?} repeats an earlier column"),
            ));
        }
        cols.push(c);
    }
    if !seen_cols.contains(&Col::Name) {
        errors.push(err(
            1,
            1,
            "no name column: the header row needs `name` (and any of country, company number, lei, website, tags, aliases, id)".into(),
        ));
        return Err(errors);
    }
    let mut rows = Vec::new();
    for rec in reader.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e
                    .position()
                    .map_or(0, |p| usize::try_from(p.line()).unwrap_or(0));
                errors.push(err(line, 1, format!("not a valid CSV row: {e}")));
                continue;
            }
        };
        // The csv crate places a record after CRLF at its `\n` (and counts
        // lines so): the line is counted here from the byte offset.
        let mut start = rec
            .position()
            .and_then(|p| usize::try_from(p.byte()).ok())
            .unwrap_or(0);
        while text
            .as_bytes()
            .get(start)
            .is_some_and(|b| matches!(b, b'\r' | b'\n'))
        {
            start += 1;
        }
        let line = text
            .get(..start)
            .map_or(0, |t| t.bytes().filter(|b| *b == b'\n').count() + 1);
        let raw_line = text
            .get(start..)
            .and_then(|t| t.lines().next())
            .unwrap_or("");
        let starts = field_columns(raw_line, delim);
        if rec.iter().all(str::is_empty) {
            continue;
        }
        if rec.len() > headers.len() {
            errors.push(err(
                line,
                starts.get(headers.len()).copied().unwrap_or(1),
                format!(
                    "{} cells where the header has {}; quote a cell that holds the delimiter {:?}",
                    rec.len(),
                    headers.len(),
                    char::from(delim)
                ),
            ));
            continue;
        }
        let mut row = Row {
            line,
            ..Row::default()
        };
        for (i, v) in rec.iter().enumerate() {
            if let Some(Some(c)) = cols.get(i) {
                row.cells
                    .insert(*c, (v.to_string(), starts.get(i).copied().unwrap_or(1)));
            }
        }
        rows.push(row);
    }

    let mut out = Plan::default();
    // identifier or name+country → line of the first row with it.
    let mut first: BTreeMap<String, usize> = BTreeMap::new();
    for row in &rows {
        let line = row.line;
        let Some(name) = row.get(Col::Name) else {
            errors.push(err(line, row.col(Col::Name), "the name is empty".into()));
            continue;
        };
        let country = row.get(Col::Country).map(str::to_uppercase);
        let uk = country.as_deref().is_some_and(|c| {
            matches!(
                c,
                "GB" | "UK"
                    | "UNITED KINGDOM"
                    | "GREAT BRITAIN"
                    | "ENGLAND"
                    | "SCOTLAND"
                    | "WALES"
                    | "NORTHERN IRELAND"
            )
        });
        let mut bad = false;
        let number = match row.get(Col::CompanyNumber) {
            None => None,
            Some(n) if uk => match crate::config::parse_adapter("companies-house", n) {
                Ok(a) => Some(a),
                Err(e) => {
                    errors.push(err(line, row.col(Col::CompanyNumber), e));
                    bad = true;
                    None
                }
            },
            Some(n) => match country.as_deref() {
                Some(c) if c.len() == 2 && c.chars().all(|c| c.is_ascii_alphabetic()) => {
                    match crate::config::parse_adapter(
                        "opencorporates",
                        &format!("{}/{n}", c.to_lowercase()),
                    ) {
                        Ok(a) => Some(a),
                        Err(e) => {
                            errors.push(err(line, row.col(Col::CompanyNumber), e));
                            bad = true;
                            None
                        }
                    }
                }
                _ => {
                    errors.push(err(
                        line,
                        row.col(Col::Country),
                        format!(
                            "company number {n:?} needs a country to find its registry: GB for Companies House, or a 2-letter code (OpenCorporates)"
                        ),
                    ));
                    bad = true;
                    None
                }
            },
        };
        let lei = match row.get(Col::Lei) {
            None => None,
            Some(l) => match crate::config::parse_adapter("gleif", l) {
                Ok(a) => Some(a),
                Err(e) => {
                    errors.push(err(line, row.col(Col::Lei), e));
                    bad = true;
                    None
                }
            },
        };
        let website = match row.get(Col::Website) {
            None => None,
            Some(w) => {
                let w = if w.contains("://") {
                    w.to_string()
                } else {
                    format!("https://{w}")
                };
                match url::Url::parse(&w) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                        Some(u)
                    }
                    _ => {
                        errors.push(err(
                            line,
                            row.col(Col::Website),
                            format!("website {w:?} is not an http(s) address"),
                        ));
                        bad = true;
                        None
                    }
                }
            }
        };
        if bad {
            continue;
        }
        if number.is_none() && lei.is_none() && website.is_none() {
            errors.push(err(
                line,
                row.col(Col::Name),
                format!("{name:?} has no company number, LEI or website: nothing to watch"),
            ));
            continue;
        }
        // Duplicates: of an earlier row, or of an entity already watched.
        let mut keys = Vec::new();
        if let Some(a) = &number {
            keys.push(match a {
                crate::model::Adapter::CompaniesHouse { company_number } => {
                    format!("company_number:{company_number}")
                }
                other => format!("company_number:{}", other.identifier().to_uppercase()),
            });
        }
        if let Some(a) = &lei {
            keys.push(format!("lei:{}", a.identifier()));
        }
        keys.push(format!(
            "name:{}|{}",
            crate::extract::fold(name),
            country.as_deref().unwrap_or("")
        ));
        if let Some((k, l)) = keys.iter().find_map(|k| first.get(k).map(|l| (k, *l))) {
            let what = k.split(':').next().unwrap_or("name").replace('_', " ");
            out.notes.push(format!(
                "{}:{line}: skipped: a duplicate of line {l} (same {what})",
                path.display()
            ));
            continue;
        }
        if let Some(id) = keys.iter().find_map(|k| watched.identifiers.get(k)) {
            out.notes.push(format!(
                "{}:{line}: skipped: already watched as entity {id:?}",
                path.display()
            ));
            continue;
        }
        for k in &keys {
            first.insert(k.clone(), line);
        }

        // The id: given, or from the name; unique across all watchlists.
        let base = match row.get(Col::Id) {
            Some(id) => id.to_string(),
            None => {
                let s = slug(name);
                if s.is_empty() {
                    format!(
                        "entity-{}",
                        slug(
                            &number
                                .as_ref()
                                .or(lei.as_ref())
                                .map(|a| a.identifier())
                                .unwrap_or_else(|| line.to_string())
                        )
                    )
                } else {
                    s
                }
            }
        };
        let mut id = base.clone();
        let mut n = 2;
        while watched.ids.contains(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        watched.ids.insert(id.clone());

        let t = &mut out.toml;
        t.push_str(&format!(
            "\n# Imported from {} line {line}.\n[[entity]]\nid = {}\nname = {}\n",
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            toml_str(&id),
            toml_str(name)
        ));
        let list = |v: Option<&str>| -> Vec<String> {
            v.map(|v| {
                v.split([',', ';', '|'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(toml_str)
                    .collect()
            })
            .unwrap_or_default()
        };
        let aliases = list(row.get(Col::Aliases));
        if !aliases.is_empty() {
            t.push_str(&format!("aliases = [{}]\n", aliases.join(", ")));
        }
        if let Some(c) = &country {
            let code = if uk { "GB" } else { c.as_str() };
            t.push_str(&format!("jurisdiction = {}\n", toml_str(code)));
        }
        let tags = list(row.get(Col::Tags));
        if !tags.is_empty() {
            t.push_str(&format!("tags = [{}]\n", tags.join(", ")));
        }
        let mut idents = Vec::new();
        if let Some(a) = &number {
            let num = match a {
                crate::model::Adapter::OpenCorporates { company_number, .. } => {
                    company_number.clone()
                }
                other => other.identifier(),
            };
            idents.push(format!("company_number = {}", toml_str(&num)));
        }
        if let Some(a) = &lei {
            idents.push(format!("lei = {}", toml_str(&a.identifier())));
        }
        if !idents.is_empty() {
            t.push_str(&format!("[entity.identifiers]\n{}\n", idents.join("\n")));
        }
        for a in number.iter().chain(lei.iter()) {
            t.push_str(&format!(
                "\n[[entity.source]]\nid = {}\nadapter = {}\n",
                toml_str(a.name()),
                toml_str(a.name())
            ));
            match a {
                crate::model::Adapter::CompaniesHouse { company_number } => {
                    t.push_str(&format!("company_number = {}\n", toml_str(company_number)));
                }
                crate::model::Adapter::Gleif { lei } => {
                    t.push_str(&format!("lei = {}\n", toml_str(lei)));
                }
                crate::model::Adapter::OpenCorporates {
                    jurisdiction,
                    company_number,
                } => {
                    t.push_str(&format!(
                        "jurisdiction = {}\ncompany_number = {}\n",
                        toml_str(jurisdiction),
                        toml_str(company_number)
                    ));
                }
            }
        }
        if let Some(u) = &website {
            t.push_str(&format!(
                "\n# The whole website, no selectors (`pivotwatch probe --site {u}` shows what it finds).\n\
                 [[entity.source]]\nid = \"website\"\nkind = \"site\"\nurl = {}\n",
                toml_str(u.as_str())
            ));
        }
        out.entities += 1;
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort_by_key(|d| (d.line, d.col));
        Err(errors)
    }
}

/// Reads a spreadsheet export: UTF-8 (with or without BOM), else
/// Windows-1252 (what Excel writes on many desktops).
fn read_text(path: &Path) -> Result<String, AppError> {
    let bytes = std::fs::read(path)
        .map_err(|e| AppError::Usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => encoding_rs::WINDOWS_1252
            .decode(e.as_bytes())
            .0
            .into_owned(),
    })
}

/// `import FILE.csv [--dry-run] [--into WATCHLIST.toml]`.
pub(super) fn import(
    file: &Path,
    into: Option<&Path>,
    watchlists: &Path,
    dry_run: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<u8, AppError> {
    let text = read_text(file)?;
    let target: PathBuf = match into {
        Some(p) => p.to_path_buf(),
        None => {
            let stem = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "imported".into());
            let s = slug(&stem);
            watchlists.join(format!(
                "{}.toml",
                if s.is_empty() { "imported" } else { &s }
            ))
        }
    };
    let mut known = watched(watchlists);
    if let Some(parent) = target.parent()
        && parent != watchlists
    {
        let more = watched(parent);
        known.ids.extend(more.ids);
        known.identifiers.extend(more.identifiers);
    }
    let plan = plan(file, &text, &mut known).map_err(|e| AppError::Config(ConfigErrors(e)))?;
    for n in &plan.notes {
        writeln!(err, "{n}")?;
    }
    let existing = std::fs::read_to_string(&target).ok();
    let mut body = String::new();
    if existing.is_none() {
        let name = target
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "imported".into());
        body.push_str(&format!(
            "[watchlist]\nname = {}\ndescription = {}\n",
            toml_str(&name),
            toml_str(&format!(
                "Imported from {}",
                file.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ))
        ));
    }
    body.push_str(&plan.toml);
    if dry_run {
        write!(out, "{body}")?;
        return Ok(0);
    }
    if plan.entities == 0 {
        writeln!(out, "nothing to import into {}", target.display())?;
        return Ok(0);
    }
    let mut full = existing.unwrap_or_default();
    if !full.is_empty() && !full.ends_with('\n') {
        full.push('\n');
    }
    full.push_str(&body);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Written whole, then renamed: a crash leaves the old file or the new.
    let tmp = target.with_extension("toml.importing");
    std::fs::write(&tmp, &full)?;
    std::fs::rename(&tmp, &target)?;
    writeln!(
        out,
        "imported {} entit{} into {}; check it with `pivotwatch check`",
        plan.entities,
        if plan.entities == 1 { "y" } else { "ies" },
        target.display()
    )?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_delimiters() {
        assert_eq!(slug("Atlas Métaux S.A.R.L."), "atlas-metaux-s-a-r-l");
        assert_eq!(slug("  --  "), "");
        assert_eq!(sniff_delimiter("name;country;\"a,b\"\n"), b';');
        assert_eq!(sniff_delimiter("name,country\n"), b',');
        assert_eq!(field_columns("a;\"b;c\";d", b';'), vec![1, 3, 9]);
    }
}
