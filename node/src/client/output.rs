//! Output of the CLI: aligned tables for people, JSON for scripts.

use serde_json::Value;

use super::ClientError;

/// Prints a value as pretty JSON.
pub fn json(v: &Value) -> Result<(), ClientError> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| ClientError::Message(e.to_string()))?
    );
    Ok(())
}

/// A JSON value as table text (`-` for null).
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Prints rows under headers, columns aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Prints the rows of `items` picking `fields`.
pub fn items(v: &Value, headers: &[&str], fields: &[&str]) {
    let rows: Vec<Vec<String>> = v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| fields.iter().map(|f| text(&item[*f])).collect())
                .collect()
        })
        .unwrap_or_default();
    table(headers, &rows);
    if let Some(cursor) = v["next_cursor"].as_str() {
        println!("(more: --cursor {cursor})");
    }
}

/// Prints an object's fields, one per line.
pub fn record(v: &Value, fields: &[&str]) {
    let width = fields.iter().map(|f| f.len()).max().unwrap_or(0);
    for f in fields {
        println!("{f:<width$}  {}", text(&v[*f]));
    }
}
