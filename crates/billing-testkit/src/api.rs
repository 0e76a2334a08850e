//! One HTTP client for every test: a call is a method and a path, with a bearer token, a JSON body and headers
//! when it has them; the answer is read once into an [`Answer`].

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A service's API at `base`.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// What a service answered: the status, the JSON body (`Null` when there was none) and the headers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Answer {
    /// The success envelope's `data`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// The error envelope's `code`.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// The status and the body, as most assertions take them.
    pub fn pair(self) -> (u16, Value) {
        (self.status, self.body)
    }
}

/// A request being built.
#[derive(Debug)]
pub struct Call {
    request: reqwest::RequestBuilder,
    path: String,
}

impl Api {
    /// The API at `base` (`http://127.0.0.1:8001`), called with `http`.
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self { http, base: base.into() }
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `method path`, to be completed and sent.
    pub fn call(&self, method: Method, path: &str) -> Call {
        Call { request: self.http.request(method, self.url(path)), path: path.to_owned() }
    }

    /// `method path` with an optional token and body, sent: the common case in one line.
    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        self.call(method, path).token(token).json(body).send().await
    }
}

impl Call {
    /// Authenticated with `token`, when there is one.
    pub fn token(mut self, token: Option<&str>) -> Self {
        if let Some(token) = token {
            self.request = self.request.bearer_auth(token);
        }
        self
    }

    /// With `body` as JSON, when there is one.
    pub fn json(mut self, body: Option<Value>) -> Self {
        if let Some(body) = body {
            self.request = self.request.json(&body);
        }
        self
    }

    /// With the header `name: value`, when there is a value.
    pub fn header(mut self, name: &str, value: Option<&str>) -> Self {
        if let Some(value) = value {
            self.request = self.request.header(name, value);
        }
        self
    }

    /// Sends it. An empty body reads as `Null`; any other body must be JSON (every answer of the APIs is).
    pub async fn send(self) -> Answer {
        let path = self.path;
        let res = self.request.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        let text = res.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path} answered non-JSON ({status}): {text}"))
        };
        Answer { status, body, headers }
    }
}
