//! Who is asking. Every read and change of the API needs a caller: an operator's session (a
//! cookie after `POST /api/v1/login`), or the service token (`api.token_env`, an admin for
//! automation). The city system's case callbacks carry their own token (`api.case_token_env`),
//! which allows those and the evidence files (snapshots sent as URLs), nothing else. The dashboard's files, `/metrics`, `/healthz`,
//! `/readyz` and the OpenAPI document stay public.
//!
//! Sessions live in memory (a restart logs everyone out); the cookie holds a random 256-bit
//! token and the service keeps only its SHA-256. A session unused for `api.session_timeout_h`
//! ends; so does every session of an account removed from the users file.

// The checks fail with the response to send; it is built once per request, never copied.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ApiState;
use crate::accounts::{Accounts, Role};

/// The session cookie's name.
pub const COOKIE: &str = "dw_session";
/// Most sessions kept at once; the least recently used goes first.
const MAX_SESSIONS: usize = 10_000;
/// Failed logins of one name within [`FAILURE_WINDOW`] before it is refused for the rest of it.
const MAX_FAILURES: u32 = 5;
/// Most names whose failed logins are remembered at once (a flood of made-up names cannot grow
/// the table without bound).
const MAX_FAILING_NAMES: usize = 10_000;
/// How long failed logins are remembered.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A logged-in account.
    User {
        /// Login name.
        name: String,
        /// Name shown on reviews.
        shown: String,
        /// What it may do (as the users file says now).
        role: Role,
    },
    /// The service token: an admin without a name.
    ServiceToken,
}

impl Caller {
    /// What the caller may do.
    pub fn role(&self) -> Role {
        match self {
            Caller::User { role, .. } => *role,
            Caller::ServiceToken => Role::Admin,
        }
    }

    /// Refuses (403, naming the role needed) a caller whose role is below `needed`.
    pub fn needs(&self, needed: Role) -> Result<(), Response> {
        if self.role() >= needed {
            Ok(())
        } else {
            Err((
                StatusCode::FORBIDDEN,
                Json(json!({ "error": format!(
                    "this needs the {needed} role; your account is a {}", self.role()
                ) })),
            )
                .into_response())
        }
    }
}

struct Session {
    name: String,
    last_used: Instant,
}

/// Logins, sessions and tokens.
pub struct Auth {
    accounts: Option<Accounts>,
    service_token: Option<String>,
    case_token: Option<String>,
    idle: Duration,
    secure_cookie: bool,
    /// SHA-256 of the cookie's token → session.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    /// Failed logins per name: how many, since when.
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    /// One password check at a time: each takes 7 MiB and some 30 ms of a core.
    checking: tokio::sync::Semaphore,
}

impl Auth {
    /// `accounts`: the users file (none: no one can log in); the tokens from the environment.
    pub fn new(
        accounts: Option<Accounts>,
        service_token: Option<String>,
        case_token: Option<String>,
        idle: Duration,
        secure_cookie: bool,
    ) -> Auth {
        Auth {
            accounts,
            service_token: service_token.filter(|t| !t.is_empty()),
            case_token: case_token.filter(|t| !t.is_empty()),
            idle,
            secure_cookie,
            sessions: Mutex::default(),
            failures: Mutex::default(),
            checking: tokio::sync::Semaphore::new(1),
        }
    }

    /// Who sent `headers`: a bearer service token or a live session's cookie.
    pub fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        if let Some(given) = bearer(headers) {
            return (self
                .service_token
                .as_deref()
                .is_some_and(|t| same(given, t)))
            .then_some(Caller::ServiceToken);
        }
        let token = cookie(headers, COOKIE)?;
        let key = crate::hashing::sha256(token.as_bytes());
        let name = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let session = sessions.get_mut(&key)?;
            if session.last_used.elapsed() > self.idle {
                sessions.remove(&key);
                return None;
            }
            session.last_used = Instant::now();
            session.name.clone()
        };
        let users = self.accounts.as_ref()?.current();
        let Some(user) = users.find(&name) else {
            // Removed from the users file: every session of it ends.
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, s| s.name != name);
            return None;
        };
        Some(Caller::User {
            shown: user.shown_name().to_owned(),
            name,
            role: user.role,
        })
    }

    /// Whether `headers` carry the city system's case token.
    pub fn is_case_system(&self, headers: &HeaderMap) -> bool {
        matches!((bearer(headers), &self.case_token), (Some(g), Some(t)) if same(g, t))
    }

    /// Whether case callbacks can be accepted at all.
    pub fn case_token_set(&self) -> bool {
        self.case_token.is_some()
    }

    fn cookie_header(&self, token: &str, max_age_s: u64) -> HeaderValue {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
        ))
        .expect("a cookie of ASCII characters")
    }

    fn start_session(&self, name: &str) -> String {
        let bytes: [u8; 32] = rand::random();
        let token = crate::hashing::hex(&bytes);
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.last_used.elapsed() <= self.idle);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            crate::hashing::sha256(token.as_bytes()),
            Session {
                name: name.to_owned(),
                last_used: Instant::now(),
            },
        );
        token
    }

    /// Seconds until `name` may try again, when it failed too often lately.
    fn locked_out(&self, name: &str) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (count, since) = failures.get(name)?;
        let left = FAILURE_WINDOW.checked_sub(since.elapsed())?;
        (*count >= MAX_FAILURES).then(|| left.as_secs().max(1))
    }

    fn count_failure(&self, name: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        if failures.len() < MAX_FAILING_NAMES || failures.contains_key(name) {
            failures
                .entry(name.to_owned())
                .or_insert((0, Instant::now()))
                .0 += 1;
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Compares without an early exit on the first differing byte (lengths may leak, contents not).
fn same(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({ "error": message })),
    )
        .into_response()
}

/// Middleware of every non-public route: the request goes on with its [`Caller`] as an
/// extension, or is answered 401.
pub async fn require_caller(State(s): State<ApiState>, mut req: Request, next: Next) -> Response {
    match s.auth.caller(req.headers()) {
        Some(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => unauthorized(
            "log in (POST /api/v1/login) or send the service token (Authorization: Bearer ...)",
        ),
    }
}

/// Middleware of the evidence files: the city system's case token is let through too (it fetches
/// the snapshots of `delivery.snapshots = "url"`), without a [`Caller`].
pub async fn require_caller_or_city(
    State(s): State<ApiState>,
    req: Request,
    next: Next,
) -> Response {
    if s.auth.is_case_system(req.headers()) {
        return next.run(req).await;
    }
    require_caller(State(s), req, next).await
}

/// Body of `POST /api/v1/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Login name.
    name: String,
    /// Password.
    password: String,
}

/// Who is logged in (`GET /api/v1/me`, and the answer to a login).
#[derive(Serialize)]
pub struct Me {
    /// Login name (`null` for the service token).
    name: Option<String>,
    /// Name shown on reviews.
    shown_name: String,
    /// What the caller may do.
    role: Role,
}

impl Me {
    fn of(caller: &Caller) -> Me {
        match caller {
            Caller::User { name, shown, role } => Me {
                name: Some(name.clone()),
                shown_name: shown.clone(),
                role: *role,
            },
            Caller::ServiceToken => Me {
                name: None,
                shown_name: "service token".into(),
                role: Role::Admin,
            },
        }
    }
}

/// `POST /api/v1/login`: checks a name and password against the users file; on success sets
/// the session cookie and answers who is logged in. Five failures of one name in 15 minutes
/// refuse it (429) for the rest of them.
pub async fn login(
    State(s): State<ApiState>,
    body: Result<Json<Login>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!("body: {{\"name\": ..., \"password\": ...}}: {}", e.body_text()) })),
            )
                .into_response();
        }
    };
    let auth = s.auth.clone();
    let Some(accounts) = auth.accounts.as_ref() else {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "no accounts on this service: set api.users_file and add users with `dumpwatch users add`" })),
        )
            .into_response();
    };
    if body.name.len() > 64 || body.password.len() > 1024 {
        return unauthorized("wrong name or password");
    }
    if let Some(wait) = auth.locked_out(&body.name) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait.to_string())],
            Json(json!({ "error": format!("too many failed logins for {:?}: try again in {wait} s", body.name) })),
        )
            .into_response();
    }
    let users = accounts.current();
    let user = users.find(&body.name).cloned();
    let Ok(_permit) = auth.checking.acquire().await else {
        return unauthorized("wrong name or password");
    };
    let hash = user.as_ref().map_or_else(
        || crate::accounts::decoy_hash().to_owned(),
        |u| u.password.clone(),
    );
    let password = body.password;
    let matched =
        tokio::task::spawn_blocking(move || crate::accounts::verify_password(&password, &hash))
            .await
            .unwrap_or(false);
    let Some(user) = user.filter(|_| matched) else {
        auth.count_failure(&body.name);
        tracing::warn!(name = %body.name, "a failed login");
        return unauthorized("wrong name or password");
    };
    tracing::info!(name = %user.name, role = %user.role, "logged in");
    let token = auth.start_session(&user.name);
    let caller = Caller::User {
        name: user.name.clone(),
        shown: user.shown_name().to_owned(),
        role: user.role,
    };
    (
        [(
            header::SET_COOKIE,
            auth.cookie_header(&token, auth.idle.as_secs()),
        )],
        Json(Me::of(&caller)),
    )
        .into_response()
}

/// `POST /api/v1/logout`: ends the session of the request's cookie (if any) and clears it.
pub async fn logout(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, COOKIE) {
        let key = crate::hashing::sha256(token.as_bytes());
        s.auth
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, s.auth.cookie_header("", 0))],
    )
        .into_response()
}

/// `GET /api/v1/me`: who the request's session or token is.
pub async fn me(axum::Extension(caller): axum::Extension<Caller>) -> Response {
    Json(Me::of(&caller)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{User, UsersFile, hash_password};

    fn auth_with(dir: &std::path::Path, users: Vec<User>) -> Auth {
        let path = dir.join("users.toml");
        UsersFile { users }.save(&path).unwrap();
        Auth::new(
            Some(Accounts::open(&path).unwrap()),
            Some("service-secret".into()),
            Some("case-secret".into()),
            Duration::from_secs(3600),
            false,
        )
    }

    fn with_header(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn a_session_names_its_account_until_the_account_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let user = User {
            name: "li".into(),
            display_name: Some("李".into()),
            role: Role::Operator,
            password: hash_password("12345678").unwrap(),
        };
        let auth = auth_with(dir.path(), vec![user]);
        let token = auth.start_session("li");
        let h = with_header(header::COOKIE, &format!("other=1; {COOKIE}={token}"));
        assert_eq!(
            auth.caller(&h),
            Some(Caller::User {
                name: "li".into(),
                shown: "李".into(),
                role: Role::Operator
            })
        );
        assert_eq!(
            auth.caller(&with_header(header::COOKIE, &format!("{COOKIE}=x{token}"))),
            None
        );
        assert_eq!(auth.caller(&HeaderMap::new()), None);

        std::thread::sleep(Duration::from_millis(1100));
        UsersFile::default()
            .save(&dir.path().join("users.toml"))
            .unwrap();
        assert_eq!(auth.caller(&h), None);
    }

    #[test]
    fn each_token_opens_only_its_own_door() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth_with(dir.path(), vec![]);
        let service = with_header(header::AUTHORIZATION, "Bearer service-secret");
        let case = with_header(header::AUTHORIZATION, "Bearer case-secret");
        assert_eq!(auth.caller(&service), Some(Caller::ServiceToken));
        assert_eq!(auth.caller(&case), None);
        assert!(auth.is_case_system(&case));
        assert!(!auth.is_case_system(&service));
        assert!(Caller::ServiceToken.needs(Role::Admin).is_ok());
        let viewer = Caller::User {
            name: "v".into(),
            shown: "v".into(),
            role: Role::Viewer,
        };
        assert!(viewer.needs(Role::Viewer).is_ok());
        assert!(viewer.needs(Role::Operator).is_err());
    }

    #[test]
    fn a_name_that_failed_too_often_waits() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth_with(dir.path(), vec![]);
        for _ in 0..MAX_FAILURES - 1 {
            auth.count_failure("x");
        }
        assert_eq!(auth.locked_out("x"), None);
        auth.count_failure("x");
        assert!(auth.locked_out("x").is_some_and(|s| s > 800));
        assert_eq!(auth.locked_out("y"), None);
    }
}
