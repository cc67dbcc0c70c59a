//! Reading the outputs of a FormKiQ CloudFormation stack, as
//! `aws cloudformation describe-stacks` prints them: either the whole
//! document (`{"Stacks": [{"Outputs": [...]}]}`), one stack object, or
//! just the list (`--query 'Stacks[0].Outputs'`).

use serde_json::Value;

/// Current stacks name the auth endpoint so.
const USER_AUTH_API_URL: &str = "UserAuthApiUrl";
/// Older stacks (and FormKiQ's guide) name the auth endpoint so.
const COGNITO_API_ENDPOINT: &str = "CognitoApiEndpoint";
/// The JWT-authorised API.
const HTTP_API_URL: &str = "HttpApiUrl";
/// The Cognito app client.
const COGNITO_CLIENT_ID: &str = "CognitoClientId";
/// The Cognito user pool, `<region>_<id>`.
const COGNITO_USER_POOL_ID: &str = "CognitoUserPoolId";

/// What fkq-cred takes from a stack's outputs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StackValues {
    /// The auth endpoint.
    pub auth_url: Option<String>,
    /// Which output the auth endpoint came from.
    pub auth_key: Option<&'static str>,
    /// The API endpoint.
    pub api_url: Option<String>,
    /// The Cognito app client id.
    pub client_id: Option<String>,
    /// The AWS region, from the user pool id.
    pub region: Option<String>,
}

/// Parses the JSON text of stack outputs; the error says what was
/// expected.
pub fn parse(text: &str) -> Result<StackValues, String> {
    let document: Value = serde_json::from_str(text).map_err(|e| {
        format!("is not JSON ({e}); run describe-stacks with --output json")
    })?;
    let outputs = outputs_list(&document)?;
    let mut found = std::collections::BTreeMap::new();
    for output in outputs {
        let key = output.get("OutputKey").and_then(Value::as_str);
        let value = output.get("OutputValue").and_then(Value::as_str);
        if let (Some(key), Some(value)) = (key, value) {
            found.insert(key, value.trim());
        }
    }
    let take = |key: &str| found.get(key).map(|v| (*v).to_owned());
    let (auth_url, auth_key) = match take(USER_AUTH_API_URL) {
        Some(url) => (Some(url), Some(USER_AUTH_API_URL)),
        None => match take(COGNITO_API_ENDPOINT) {
            Some(url) => (Some(url), Some(COGNITO_API_ENDPOINT)),
            None => (None, None),
        },
    };
    Ok(StackValues {
        auth_url,
        auth_key,
        api_url: take(HTTP_API_URL),
        client_id: take(COGNITO_CLIENT_ID),
        region: found.get(COGNITO_USER_POOL_ID).and_then(|id| region_of(id)),
    })
}

fn outputs_list(document: &Value) -> Result<&Vec<Value>, String> {
    if let Some(list) = document.as_array() {
        return Ok(list);
    }
    let stack = match document.get("Stacks").and_then(Value::as_array) {
        Some(stacks) if stacks.len() == 1 => &stacks[0],
        Some(stacks) => {
            return Err(format!(
                "describes {} stacks; pick one with --stack-name, or pass --query 'Stacks[0].Outputs'",
                stacks.len()
            ))
        }
        None => document,
    };
    stack.get("Outputs").and_then(Value::as_array).ok_or_else(|| {
        "has no Outputs list; expected the output of `aws cloudformation describe-stacks`".to_owned()
    })
}

/// The region of a user pool id: `us-east-1_AbC123` is in `us-east-1`.
pub fn region_of(pool_id: &str) -> Option<String> {
    let (region, id) = pool_id.split_once('_')?;
    let looks_like_region = region.split('-').count() >= 3
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (looks_like_region && !id.is_empty()).then(|| region.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW_OUTPUTS: &str = r#"[
        {"OutputKey": "AppEnvironment", "OutputValue": "prod"},
        {"OutputKey": "UserAuthApiUrl", "OutputValue": "https://auth.example.com/", "Description": "auth"},
        {"OutputKey": "HttpApiUrl", "OutputValue": "https://api.example.com"},
        {"OutputKey": "IamApiUrl", "OutputValue": "https://iam.example.com"},
        {"OutputKey": "CognitoClientId", "OutputValue": "4abc"},
        {"OutputKey": "CognitoUserPoolId", "OutputValue": "eu-central-1_XyZ9"}
    ]"#;

    #[test]
    fn the_current_output_names_are_read() {
        let values = parse(NEW_OUTPUTS).unwrap();
        assert_eq!(
            values.auth_url.as_deref(),
            Some("https://auth.example.com/")
        );
        assert_eq!(values.auth_key, Some("UserAuthApiUrl"));
        assert_eq!(values.api_url.as_deref(), Some("https://api.example.com"));
        assert_eq!(values.client_id.as_deref(), Some("4abc"));
        assert_eq!(values.region.as_deref(), Some("eu-central-1"));
    }

    #[test]
    fn the_older_auth_output_name_is_read() {
        let values = parse(
            r#"[{"OutputKey": "CognitoApiEndpoint", "OutputValue": "https://old.example.com"},
                {"OutputKey": "HttpApiUrl", "OutputValue": "https://api.example.com"}]"#,
        )
        .unwrap();
        assert_eq!(values.auth_url.as_deref(), Some("https://old.example.com"));
        assert_eq!(values.auth_key, Some("CognitoApiEndpoint"));
        assert_eq!(values.region, None);
    }

    #[test]
    fn a_whole_describe_stacks_document_is_read() {
        let document = format!(
            r#"{{"Stacks": [{{"StackName": "formkiq-core-prod", "StackStatus": "CREATE_COMPLETE", "Outputs": {NEW_OUTPUTS}}}]}}"#
        );
        assert_eq!(parse(&document).unwrap(), parse(NEW_OUTPUTS).unwrap());
        let one_stack = format!(r#"{{"Outputs": {NEW_OUTPUTS}}}"#);
        assert_eq!(parse(&one_stack).unwrap(), parse(NEW_OUTPUTS).unwrap());
    }

    #[test]
    fn unusable_documents_say_what_was_expected() {
        assert!(parse("Outputs  HttpApiUrl  https://x")
            .unwrap_err()
            .contains("--output json"));
        assert!(parse(r#"{"Stacks": [{}, {}]}"#)
            .unwrap_err()
            .contains("2 stacks"));
        assert!(parse(r#"{"nope": 1}"#).unwrap_err().contains("Outputs"));
    }

    #[test]
    fn regions_come_only_from_pool_ids_that_look_like_one() {
        assert_eq!(region_of("us-east-1_AbC").as_deref(), Some("us-east-1"));
        assert_eq!(
            region_of("ap-southeast-2_x").as_deref(),
            Some("ap-southeast-2")
        );
        assert_eq!(region_of("nounderscore"), None);
        assert_eq!(region_of("Weird_x"), None);
        assert_eq!(region_of("us-east-1_"), None);
    }
}
