//! `keel lease grant --count N`, `keel lease renew ID...`,
//! `keel lease revoke ID...`: many leases through `/v1/leases/batch`, in
//! requests of at most 1000 items, with a line per item and a summary.

use serde_json::{Value, json};

use super::http::ApiClient;
use super::{ClientError, output};

/// Most items the server takes in one list of a batch.
const CHUNK: usize = 1000;

/// Sends `items` as the `list` of as many batches as it takes and prints
/// what became of each. Fails if any item was refused.
pub async fn run(
    client: &ApiClient,
    json_out: bool,
    list: &str,
    items: Vec<Value>,
) -> Result<(), ClientError> {
    let mut results = Vec::with_capacity(items.len());
    for chunk in items.chunks(CHUNK) {
        let answer = client
            .post("/v1/leases/batch", Some(json!({ list: chunk })))
            .await?;
        let got = answer[list].as_array().cloned().unwrap_or_default();
        if got.len() != chunk.len() {
            return Err(ClientError::Message(format!(
                "the server answered {} results for {} items",
                got.len(),
                chunk.len()
            )));
        }
        // A revoke's result names no lease: show the id that was sent.
        results.extend(chunk.iter().zip(got).map(|(sent, mut got)| {
            if got["lease"].is_null() {
                got["id"] = sent.get("id").unwrap_or(sent).clone();
            }
            got
        }));
    }
    let failed = results.iter().filter(|r| r["error"].is_object()).count();
    if json_out {
        output::json(
            &json!({ list: results, "succeeded": results.len() - failed, "failed": failed }),
        )?;
    } else {
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                let id = if r["lease"].is_object() {
                    &r["lease"]["id"]
                } else {
                    &r["id"]
                };
                vec![
                    output::text(id),
                    output::text(&r["status"]),
                    output::text(&r["lease"]["expires_at"]),
                    output::text(&r["error"]["message"]),
                ]
            })
            .collect();
        output::table(&["id", "status", "expires_at", "error"], &rows);
        println!("{} succeeded, {failed} failed", results.len() - failed);
    }
    if failed > 0 {
        return Err(ClientError::Message(format!(
            "{failed} of {} items were refused",
            results.len()
        )));
    }
    Ok(())
}
