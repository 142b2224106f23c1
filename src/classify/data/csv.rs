//! Reading the CSV reference files (`chpl.csv`, `activity_codes.csv`).
//!
//! The files are CSV as a spreadsheet writes it (RFC 4180: commas, fields in double quotes
//! when they hold a comma, `""` for a quote inside one), plus `#` comment lines and blank
//! lines, which are skipped. The first other line is the header: it names the columns, in
//! any order and any case.
//!
//! Fields are split and unquoted by `csv-core`, the parser of the `csv` crate, one line at a
//! time. Line at a time keeps every row's line number exact (the `csv` reader's
//! `Position::line` is off after blank and comment lines, BurntSushi/rust-csv#208) and keeps
//! the rule that a field cannot span lines. `csv-core` also gives each field's raw extent,
//! which keeps the strict quoting rules below: `csv` itself reads a stray quote as text,
//! where for a hand-edited data file it is almost always a mistake.
//!
//! **Invariants:** every row returned has exactly as many fields as the header, each
//! trimmed of surrounding whitespace; a line with a problem (a quote error, the wrong
//! number of fields) is reported as `path:line` and skipped, and reading goes on, so one
//! pass reports every bad line; a file without a header line, a header with an unknown
//! column or without a required one, is an error.

use std::collections::HashMap;

use csv_core::{ReadFieldResult, Reader};

use super::File;
use crate::classify::RefDataError;

/// One data row of a CSV file.
pub(super) struct CsvRow {
    /// 1-based line number in the file.
    pub(super) line: usize,
    fields: HashMap<&'static str, String>,
}

impl CsvRow {
    /// The field of a column ("" when the header does not name it).
    pub(super) fn get(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }
}

const QUOTE_INSIDE: &str =
    "a quote inside an unquoted field (quote the whole field and double the inner quotes)";
const SPACE_BEFORE_QUOTE: &str =
    "a space before an opening quote (start a quoted field right after the comma)";
const AFTER_CLOSING: &str = "text after a closing quote (double the quotes inside a quoted field)";
const UNCLOSED: &str = "unclosed quote (a field cannot span lines)";
const CR_INSIDE: &str = "a carriage return inside the line (save the file with plain line ends)";

/// What is wrong with the quoting of one field as written (`raw`, without its comma), by
/// the rules of a data file: `csv-core` reads all of these without complaint, as text.
fn quote_problem(raw: &str) -> Option<&'static str> {
    let t = raw.trim();
    if !t.contains('"') {
        return None;
    }
    let Some(mut rest) = t.strip_prefix('"') else {
        return Some(QUOTE_INSIDE);
    };
    if t.len() != raw.trim_end().len() {
        // `csv-core` opens a quoted field only at its first byte.
        return Some(SPACE_BEFORE_QUOTE);
    }
    // The closing quote is the first quote that is not doubled.
    loop {
        let Some(i) = rest.find('"') else {
            return Some(UNCLOSED);
        };
        let after = &rest[i + 1..];
        match after.strip_prefix('"') {
            Some(more) => rest = more,
            None if after.trim().is_empty() => return None,
            None => return Some(AFTER_CLOSING),
        }
    }
}

/// The fields of one line (no line break in it), each trimmed. `reader` is
/// reset first, so one reader serves every line of a file.
fn split_line(reader: &mut Reader, line: &str) -> Result<Vec<String>, &'static str> {
    reader.reset();
    let bytes = line.as_bytes();
    // A field never decodes to more bytes than it was written with (one more
    // so that the output is never empty).
    let mut out = vec![0u8; bytes.len() + 1];
    let mut fields = Vec::new();
    let (mut pos, mut start, mut written) = (0, 0, 0);
    loop {
        let (res, nin, nout) = reader.read_field(&bytes[pos..], &mut out[written..]);
        pos += nin;
        written += nout;
        match res {
            // The line has no terminator: the next call, with no input, ends the field.
            ReadFieldResult::InputEmpty if nin > 0 || pos < bytes.len() => {}
            ReadFieldResult::InputEmpty | ReadFieldResult::End => return Ok(fields),
            // Cannot happen (see `out`), but never index past it.
            ReadFieldResult::OutputFull => return Err("a field too long to read"),
            ReadFieldResult::Field { record_end } => {
                let raw = line.get(start..pos).unwrap_or("");
                let raw = if record_end {
                    raw
                } else {
                    raw.strip_suffix(',').unwrap_or(raw)
                };
                if let Some(problem) = quote_problem(raw) {
                    return Err(problem);
                }
                let value = String::from_utf8_lossy(&out[..written]);
                fields.push(value.trim().to_string());
                (start, written) = (pos, 0);
                if record_end {
                    return if pos < bytes.len() {
                        // A carriage return in the middle of the line ended the record.
                        Err(CR_INSIDE)
                    } else {
                        Ok(fields)
                    };
                }
            }
        }
    }
}

/// Reads a CSV file with `#` comment lines and a header naming (at least) `required`, out
/// of the known `columns`; every problem goes to `errs`.
pub(super) fn read_csv(
    file: &File<'_>,
    columns: &[&'static str],
    required: &[&'static str],
    errs: &mut Vec<RefDataError>,
) -> Vec<CsvRow> {
    let mut rows = Vec::new();
    let mut header: Option<Vec<Option<&'static str>>> = None;
    let mut reader = Reader::new();
    for (i, raw) in file.text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = match split_line(&mut reader, line) {
            Ok(f) => f,
            Err(m) => {
                errs.push(file.syntax(line_no, m));
                continue;
            }
        };
        match &header {
            None => {
                let names: Vec<Option<&'static str>> = fields
                    .iter()
                    .map(|f| columns.iter().copied().find(|c| c.eq_ignore_ascii_case(f)))
                    .collect();
                for (f, n) in fields.iter().zip(&names) {
                    if n.is_none() {
                        errs.push(file.syntax(
                            line_no,
                            format!(
                                "unknown column '{f}' in the header (columns: {})",
                                columns.join(",")
                            ),
                        ));
                    }
                }
                for r in required {
                    if !names.contains(&Some(*r)) {
                        errs.push(file.syntax(
                            line_no,
                            format!(
                                "the header lacks column '{r}' (expected: {})",
                                columns.join(",")
                            ),
                        ));
                    }
                }
                header = Some(names);
            }
            Some(names) => {
                if fields.len() != names.len() {
                    errs.push(file.syntax(
                        line_no,
                        format!(
                            "expected {} fields like the header, found {} (quote fields that contain commas)",
                            names.len(),
                            fields.len()
                        ),
                    ));
                    continue;
                }
                let fields = names
                    .iter()
                    .zip(fields)
                    .filter_map(|(n, f)| n.map(|n| (n, f)))
                    .collect();
                rows.push(CsvRow {
                    line: line_no,
                    fields,
                });
            }
        }
    }
    if header.is_none() {
        errs.push(file.syntax(
            1,
            format!("no header line (expected: {})", columns.join(",")),
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn split(line: &str) -> Result<Vec<String>, &'static str> {
        split_line(&mut Reader::new(), line)
    }

    fn read(text: &str, columns: &[&'static str]) -> (Vec<CsvRow>, Vec<String>) {
        let file = File::new(PathBuf::from("t.csv"), text);
        let mut errs = Vec::new();
        let rows = read_csv(&file, columns, columns, &mut errs);
        (rows, errs.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(
            split(r#"a,"b, c" ,"say ""hi""""#),
            Ok(vec!["a".into(), "b, c".into(), "say \"hi\"".into()])
        );
        assert_eq!(
            split(" a , b,,c "),
            Ok(vec!["a".into(), "b".into(), String::new(), "c".into()])
        );
        assert_eq!(split("abc"), Ok(vec!["abc".into()]));
        assert_eq!(split("\"a,b\""), Ok(vec!["a,b".into()]));
        assert_eq!(split("a,"), Ok(vec!["a".into(), String::new()]));
        assert_eq!(split(r#"a,"open"#), Err(UNCLOSED));
        assert_eq!(split(r#"a,"open,b"#), Err(UNCLOSED));
    }

    #[test]
    fn stray_quotes_are_errors_not_text() {
        assert_eq!(split(r#"a,19" rack,b"#), Err(QUOTE_INSIDE));
        assert_eq!(split(r#"a,"b"c,d"#), Err(AFTER_CLOSING));
        assert_eq!(split(r#"a, "b, c",d"#), Err(SPACE_BEFORE_QUOTE));
        assert_eq!(split("a,b\rc,d"), Err(CR_INSIDE));
    }

    #[test]
    fn a_byte_order_mark_before_the_header_is_not_part_of_it() {
        let (rows, errs) = read("\u{feff}hs6,tier\n854231,1\n", &["hs6", "tier"]);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn one_reader_reads_every_line_of_a_file() {
        let mut reader = Reader::new();
        assert_eq!(split_line(&mut reader, r#"a,"open"#), Err(UNCLOSED));
        // The unclosed quote of the last line does not carry over.
        assert_eq!(
            split_line(&mut reader, "b,c"),
            Ok(vec!["b".into(), "c".into()])
        );
    }

    #[test]
    fn comments_blank_lines_and_header_columns() {
        let text =
            "# about\n\n  # indented\nTIER, hs6 ,description\r\n1,854231,\"Processors, DSP\"\n";
        let (rows, errs) = read(text, &["hs6", "tier", "description"]);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].line, 5);
        assert_eq!(rows[0].get("hs6"), "854231");
        assert_eq!(rows[0].get("description"), "Processors, DSP");
        assert_eq!(rows[0].get("nope"), "");
    }

    #[test]
    fn every_bad_line_is_reported_with_its_line() {
        let text = "hs6,tier,colour\n854231,1\n\"x,1,y\n854231,1,\"ok\"\n";
        let (rows, errs) = read(text, &["hs6", "tier", "description"]);
        assert_eq!(
            errs,
            [
                "t.csv:1: unknown column 'colour' in the header (columns: hs6,tier,description)",
                "t.csv:1: the header lacks column 'description' (expected: hs6,tier,description)",
                "t.csv:2: expected 3 fields like the header, found 2 (quote fields that contain commas)",
                "t.csv:3: unclosed quote (a field cannot span lines)",
            ]
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].line, 4);
        let (_, errs) = read("# only a comment\n", &["hs6"]);
        assert_eq!(errs, ["t.csv:1: no header line (expected: hs6)"]);
    }
}
