//! What a container changed: `GET /containers/{id}/changes`, `GET
//! /containers/{id}/export` (its filesystem as a tar) and `POST /commit`
//! (a new image from it, its config body applied as the Dockerfile
//! instructions the engine's commit takes); and `POST /auth` (`docker login`), which checks
//! credentials against the registry and keeps nothing.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{container_error, json_response, truthy, ApiError, ApiResult, State};
use crate::image::registry::Credentials;

/// `GET /containers/{id}/changes`: kind 0 changed, 1 added, 2 deleted.
pub async fn changes(AxState(api): State, Path(id): Path<String>) -> ApiResult<Response> {
    let list = api
        .agent
        .containers
        .changes(&id)
        .map_err(|e| container_error(e, &id))?;
    let out: Vec<Value> = list
        .into_iter()
        .map(|c| {
            let kind = match c.kind.to_string().as_str() {
                "A" => 1,
                "D" => 2,
                _ => 0,
            };
            json!({ "Path": c.path, "Kind": kind })
        })
        .collect();
    Ok(axum::Json(out).into_response())
}

/// `GET /containers/{id}/export`.
pub async fn export(AxState(api): State, Path(id): Path<String>) -> ApiResult<Response> {
    let r = super::containers::record(&api, &id)?;
    let containers = api.agent.containers.clone();
    let rx =
        crate::util::chunks::written(move |w| async move { containers.export(&r.id, w).await });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| {
            let item = c
                .map(bytes::Bytes::from)
                .map_err(|e| std::io::Error::other(e.to_string()));
            (item, rx)
        })
    });
    let mut resp = Body::from_stream(body).into_response();
    resp.headers_mut().insert(
        "Content-Type",
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

/// Config fields a commit body may carry that do not change how the
/// image runs (dockerd keeps them; a `docker run` takes them from its
/// own flags): accepted and left out.
const RUN_ONLY: &[&str] = &[
    "Hostname",
    "Domainname",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Image",
    "ArgsEscaped",
    "NetworkDisabled",
    "MacAddress",
];

/// True for JSON's zero values: null, "", false, 0, [] and {}. Unlike
/// create's check, an object is zero only when empty: `ExposedPorts` and
/// `Volumes` are sets written as objects of empty objects
/// (`{"80/tcp": {}}`), and those are set.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

/// A command (`Cmd`, `Entrypoint`) as a JSON list: a string is a
/// one-word command, as dockerd reads it.
fn command(field: &str, v: &Value) -> ApiResult<String> {
    let words: Vec<String> = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|w| w.as_str().map(String::from))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "{field} in the commit's config must be a list of strings"
                ))
            })?,
        _ => {
            return Err(ApiError::bad(format!(
                "{field} in the commit's config must be a list of strings"
            )))
        }
    };
    Ok(serde_json::to_string(&words).unwrap_or_default())
}

/// The keys of an object field (`ExposedPorts`, `Volumes`).
fn keys<'a>(field: &str, v: &'a Value) -> ApiResult<Vec<&'a String>> {
    v.as_object()
        .map(|m| m.keys().collect())
        .ok_or_else(|| ApiError::bad(format!("{field} in the commit's config must be an object")))
}

/// A word the engine's instructions carry whole: no blanks or quotes.
fn plain_word<'a>(field: &str, w: &'a str) -> ApiResult<&'a str> {
    if w.is_empty() || w.chars().any(|c| c.is_whitespace() || c == '"') {
        Err(ApiError::bad(format!(
            "{field} {w:?} in the commit's config: Berth takes no blanks or quotes there"
        )))
    } else {
        Ok(w)
    }
}

/// A commit's config body (docker-py's `conf`, the API's
/// `ContainerConfig`) as the Dockerfile instructions the engine's
/// commit applies: `Cmd`, `Entrypoint`, `Env`, `Labels`,
/// `ExposedPorts`, `Volumes`, `WorkingDir`, `User` and `StopSignal`.
/// Fields that only shape a run are left out ([`RUN_ONLY`]); any other
/// set field is refused, named.
fn body_changes(body: &[u8]) -> ApiResult<Vec<String>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let cfg: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("invalid JSON in the commit's config: {e}")))?;
    let Some(fields) = cfg.as_object() else {
        return match cfg {
            Value::Null => Ok(Vec::new()),
            _ => Err(ApiError::bad("the commit's config must be a JSON object")),
        };
    };
    let mut out = Vec::new();
    for (field, v) in fields {
        if is_zero(v) || RUN_ONLY.contains(&field.as_str()) {
            continue;
        }
        match field.as_str() {
            "Cmd" => out.push(format!("CMD {}", command(field, v)?)),
            "Entrypoint" => out.push(format!("ENTRYPOINT {}", command(field, v)?)),
            "WorkingDir" | "User" | "StopSignal" => {
                let text = v.as_str().ok_or_else(|| {
                    ApiError::bad(format!("{field} in the commit's config must be a string"))
                })?;
                let word = match field.as_str() {
                    "WorkingDir" => "WORKDIR",
                    "User" => "USER",
                    _ => "STOPSIGNAL",
                };
                out.push(format!("{word} {}", text.trim()));
            }
            "Env" => {
                let list = v.as_array().ok_or_else(|| {
                    ApiError::bad("Env in the commit's config must be a list of NAME=value")
                })?;
                for e in list {
                    let e = e.as_str().ok_or_else(|| {
                        ApiError::bad("Env in the commit's config must be a list of NAME=value")
                    })?;
                    let (name, value) = e.split_once('=').unwrap_or((e, ""));
                    let name = plain_word("the variable", name)?;
                    if value.contains('=') || value.contains('"') {
                        plain_word("the value", value)?;
                    }
                    // "ENV N v w" keeps the blanks of a value without "=".
                    if value.chars().any(char::is_whitespace) {
                        out.push(format!("ENV {name} {value}"));
                    } else {
                        out.push(format!("ENV {name}={value}"));
                    }
                }
            }
            "Labels" => {
                let map = v.as_object().ok_or_else(|| {
                    ApiError::bad("Labels in the commit's config must be an object of strings")
                })?;
                for (k, val) in map {
                    let val = val.as_str().ok_or_else(|| {
                        ApiError::bad("Labels in the commit's config must be an object of strings")
                    })?;
                    let k = plain_word("the label", k)?;
                    if k.contains('=') {
                        return Err(ApiError::bad(format!(
                            "the label {k:?} in the commit's config has \"=\" in its name"
                        )));
                    }
                    let val = plain_word("the label value", val)?;
                    out.push(format!("LABEL {k}={val}"));
                }
            }
            "ExposedPorts" => {
                for p in keys(field, v)? {
                    out.push(format!("EXPOSE {}", plain_word("the port", p)?));
                }
            }
            "Volumes" => {
                for p in keys(field, v)? {
                    out.push(format!(
                        "VOLUME {}",
                        serde_json::to_string(&[p]).unwrap_or_default()
                    ));
                }
            }
            other => {
                return Err(ApiError::bad(format!(
                    "{other} in a commit's config is not supported by Berth: commit without it"
                )))
            }
        }
    }
    Ok(out)
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`.
pub async fn commit(
    AxState(api): State,
    Query(pairs): Query<Vec<(String, String)>>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let q: HashMap<String, String> = pairs.iter().cloned().collect();
    let id = q.get("container").cloned().unwrap_or_default();
    let r = super::containers::record(&api, &id)?;
    // The body's settings first, then `changes` over them, as dockerd.
    let mut changes = body_changes(&body)?;
    let repo = q.get("repo").cloned().unwrap_or_default();
    let reference = match (repo.is_empty(), q.get("tag").filter(|t| !t.is_empty())) {
        (true, _) => String::new(),
        (false, Some(t)) => format!("{repo}:{t}"),
        (false, None) => repo,
    };
    changes.extend(
        pairs
            .iter()
            .filter(|(k, v)| k == "changes" && !v.is_empty())
            .flat_map(|(_, v)| v.lines().map(String::from).collect::<Vec<_>>()),
    );
    let pause = q.get("pause").is_none_or(|p| truthy(Some(p)));
    let image_id = api
        .agent
        .containers
        .commit(
            &r.id,
            &reference,
            q.get("author").map(String::as_str).unwrap_or(""),
            q.get("comment").map(String::as_str).unwrap_or(""),
            &changes,
            pause,
        )
        .await
        .map_err(|e| container_error(e, &id))?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({ "Id": image_id }),
    ))
}

/// `POST /auth`: `{"username", "password", "serveraddress", …}`.
pub async fn auth(AxState(api): State, body: axum::body::Bytes) -> ApiResult<Response> {
    let b: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid JSON in the login request: {e}")))?;
    let s = |k: &str| b[k].as_str().unwrap_or_default().to_string();
    let creds = Credentials {
        username: s("username"),
        password: s("password"),
        token: if s("registrytoken").is_empty() {
            s("identitytoken")
        } else {
            s("registrytoken")
        },
    };
    let server = s("serveraddress");
    crate::image::registry::check_login(&api.agent.images.registries, &server, &creds).await?;
    Ok(axum::Json(json!({ "Status": "Login Succeeded", "IdentityToken": "" })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_body_becomes_instructions() {
        let body = br#"{"Cmd": ["cat", "/made"], "Entrypoint": null, "Env": ["A=1", "B=x y"],
            "Labels": {"team": "core"}, "ExposedPorts": {"80/tcp": {}}, "WorkingDir": "/srv",
            "User": "nobody", "Tty": true, "Hostname": "h", "Volumes": {"/data": {}}}"#;
        let mut got = body_changes(body).unwrap();
        got.sort();
        assert_eq!(
            got,
            [
                "CMD [\"cat\",\"/made\"]",
                "ENV A=1",
                "ENV B x y",
                "EXPOSE 80/tcp",
                "LABEL team=core",
                "USER nobody",
                "VOLUME [\"/data\"]",
                "WORKDIR /srv",
            ]
        );
        // Every instruction is one the engine's commit takes.
        let mut config = json!({});
        crate::image::compose::apply_changes(&mut config, &got).unwrap();
        assert_eq!(config["config"]["Env"], json!(["A=1", "B=x y"]));
        assert!(body_changes(b"null").unwrap().is_empty());
        assert!(body_changes(b"").unwrap().is_empty());
        assert!(body_changes(br#"{"Cmd": null, "Env": []}"#)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn what_the_engine_cannot_carry_is_refused_by_name() {
        let e = body_changes(br#"{"Healthcheck": {"Test": ["CMD", "true"]}}"#).unwrap_err();
        assert!(e.message.contains("Healthcheck"), "{}", e.message);
        let e = body_changes(br#"{"Labels": {"a": "two words"}}"#).unwrap_err();
        assert!(e.message.contains("two words"), "{}", e.message);
        assert!(body_changes(b"[1]").is_err());
        assert!(body_changes(br#"{"Cmd": 5}"#).is_err());
    }
}
