//! Fault injection: queues of faults per endpoint that a test sets over
//! HTTP (`POST {auth}/_emulator/faults`) or in-process, so the client's
//! handling of slow, failing, broken and oddly shaped replies can be
//! tested against the same emulator that otherwise answers correctly.
//!
//! A fault applies to the next `times` requests of its endpoint (all of
//! them when `times` is null), in the order the faults were queued: the
//! first pending fault of an endpoint is used up before the second one
//! applies. `DELETE {auth}/_emulator/faults` clears every queue.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::counters::Endpoint;

/// The path on the auth server where faults are queued and cleared.
pub const FAULTS_PATH: &str = "_emulator/faults";

/// The object whose fields `omit`, `null_fields` and `empty_fields` edit
/// when a reply has one; other replies (`/sites`) are edited at the top.
const RESULT_FIELD: &str = "AuthenticationResult";

/// One fault, as `POST /_emulator/faults` takes it.
///
/// With `status` or `body` set, the request is not processed at all: the
/// reply is `status` (200 when null) with `body` sent as is (or
/// `{"message": <reason phrase>}` when null). Without either, the request
/// is processed and its reply edited by `omit`, `null_fields` and
/// `empty_fields` (inside `AuthenticationResult`) and `extra_fields`
/// (merged into the top level, e.g. `{"ChallengeParameters": {}}` as
/// older stacks send beside the tokens). `delay_ms` stalls before anything else happens, and
/// `drop` closes the connection without any reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Which endpoint the fault applies to.
    pub endpoint: Endpoint,
    /// The status to answer with instead of the endpoint's own.
    #[serde(default)]
    pub status: Option<u16>,
    /// A raw body to answer with instead of the endpoint's own.
    #[serde(default)]
    pub body: Option<String>,
    /// How long to stall before answering, in milliseconds.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Close the connection without answering.
    #[serde(default)]
    pub drop: bool,
    /// Fields to leave out of the reply's `AuthenticationResult`.
    #[serde(default)]
    pub omit: Vec<String>,
    /// Fields to send as `null`.
    #[serde(default)]
    pub null_fields: Vec<String>,
    /// Fields to send as `""`.
    #[serde(default)]
    pub empty_fields: Vec<String>,
    /// Fields to add to (or replace in) the top level of the reply.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// How many requests the fault applies to; `None` until cleared.
    #[serde(default)]
    pub times: Option<u64>,
}

impl Fault {
    /// A fault on `endpoint` that changes nothing yet; set its fields.
    pub fn on(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            status: None,
            body: None,
            delay_ms: None,
            drop: false,
            omit: Vec::new(),
            null_fields: Vec::new(),
            empty_fields: Vec::new(),
            extra_fields: Map::new(),
            times: None,
        }
    }

    /// Says what is wrong with a fault a test asked for, if anything.
    pub fn check(&self) -> Result<(), String> {
        if let Some(status) = self.status {
            if !(200..=599).contains(&status) {
                return Err(format!(
                    "status {status} is not a final HTTP status (200..=599)"
                ));
            }
        }
        if self.times == Some(0) {
            return Err("times must be at least 1, or null".to_owned());
        }
        Ok(())
    }

    /// Whether the fault answers in place of the endpoint.
    pub(crate) fn replaces_reply(&self) -> bool {
        self.status.is_some() || self.body.is_some()
    }

    /// Applies `extra_fields`, `omit`, `null_fields` and `empty_fields` to
    /// a reply body.
    pub(crate) fn edit(&self, body: &mut Value) {
        if let Some(top) = body.as_object_mut() {
            for (name, value) in &self.extra_fields {
                top.insert(name.clone(), value.clone());
            }
        }
        let Some(fields) = target_object(body) else { return };
        for name in &self.omit {
            fields.remove(name);
        }
        for name in &self.null_fields {
            fields.insert(name.clone(), Value::Null);
        }
        for name in &self.empty_fields {
            fields.insert(name.clone(), Value::String(String::new()));
        }
    }
}

fn target_object(body: &mut Value) -> Option<&mut Map<String, Value>> {
    let fields = body.as_object_mut()?;
    if fields.get(RESULT_FIELD).is_some_and(Value::is_object) {
        return fields.get_mut(RESULT_FIELD).and_then(Value::as_object_mut);
    }
    Some(fields)
}

/// The pending faults of one emulator, in the order they were queued.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    faults: Mutex<Vec<Fault>>,
}

impl FaultQueue {
    /// Queues a fault behind those already pending.
    pub(crate) fn push(&self, fault: Fault) {
        lock(&self.faults).push(fault);
    }

    /// Drops every pending fault.
    pub(crate) fn clear(&self) {
        lock(&self.faults).clear();
    }

    /// The pending faults, with their remaining `times`.
    pub(crate) fn pending(&self) -> Vec<Fault> {
        lock(&self.faults).clone()
    }

    /// The fault for the next request to `endpoint`, using up one of its
    /// `times`; `None` when no fault is pending for it.
    pub(crate) fn take(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let index = faults.iter().position(|f| f.endpoint == endpoint)?;
        let fault = faults[index].clone();
        match &mut faults[index].times {
            Some(1) => {
                faults.remove(index);
            }
            Some(left) => *left -= 1,
            None => {}
        }
        Some(fault)
    }
}

/// The queue holds whole faults only, so a lock poisoned by a panicking
/// handler is still safe to use.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn faults_apply_in_order_and_times_counts_down() {
        let queue = FaultQueue::default();
        let first = Fault {
            status: Some(500),
            times: Some(1),
            ..Fault::on(Endpoint::Login)
        };
        let second = Fault {
            status: Some(429),
            times: Some(2),
            ..Fault::on(Endpoint::Login)
        };
        queue.push(first);
        queue.push(second);
        queue.push(Fault { drop: true, ..Fault::on(Endpoint::Sites) });

        let statuses: Vec<_> = (0..4)
            .map(|_| queue.take(Endpoint::Login).and_then(|f| f.status))
            .collect();
        assert_eq!(statuses, [Some(500), Some(429), Some(429), None]);
        for _ in 0..3 {
            assert!(queue.take(Endpoint::Sites).is_some_and(|f| f.drop));
        }
        assert!(queue.take(Endpoint::Refresh).is_none());

        queue.clear();
        assert!(queue.take(Endpoint::Sites).is_none());
    }

    #[test]
    fn field_edits_reach_into_the_authentication_result() {
        let fault = Fault {
            omit: vec!["ExpiresIn".into()],
            null_fields: vec!["RefreshToken".into()],
            empty_fields: vec!["IdToken".into()],
            ..Fault::on(Endpoint::Login)
        };
        let mut body = json!({ "AuthenticationResult": {
            "AccessToken": "a", "IdToken": "i", "RefreshToken": "r",
            "ExpiresIn": 60,
        }});
        fault.edit(&mut body);
        assert_eq!(
            body,
            json!({ "AuthenticationResult": {
                "AccessToken": "a", "IdToken": "", "RefreshToken": null,
            }})
        );

        let mut older =
            json!({ "AuthenticationResult": { "AccessToken": "a" } });
        let extra = json!({ "ChallengeParameters": {} });
        Fault {
            extra_fields: extra.as_object().cloned().unwrap_or_default(),
            ..Fault::on(Endpoint::Login)
        }
        .edit(&mut older);
        assert_eq!(older["ChallengeParameters"], json!({}));
        assert_eq!(older["AuthenticationResult"]["AccessToken"], "a");

        let mut sites = json!({ "username": "u", "sites": [] });
        Fault { omit: vec!["username".into()], ..Fault::on(Endpoint::Sites) }
            .edit(&mut sites);
        assert_eq!(sites, json!({ "sites": [] }));
    }

    #[test]
    fn faults_read_from_json_with_defaults_and_refuse_nonsense() {
        let fault: Fault =
            serde_json::from_value(json!({ "endpoint": "refresh" }))
                .expect("minimal fault");
        assert_eq!(fault, Fault::on(Endpoint::Refresh));
        let typo = json!({ "endpoint": "login", "stauts": 500 });
        assert!(serde_json::from_value::<Fault>(typo).is_err());

        let bad_status =
            Fault { status: Some(99), ..Fault::on(Endpoint::Login) };
        assert!(bad_status.check().is_err());
        let never = Fault { times: Some(0), ..Fault::on(Endpoint::Login) };
        assert!(never.check().is_err());
    }
}
