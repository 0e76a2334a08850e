//! The gateway simulator in process, on a port of its own, for tests that pay.

use billing_config::ServiceKind;

/// The gateway simulator with a journal in a temporary directory, configured with the test environment's API key
/// and event secret. Its events go nowhere until [`Gateway::send_events_to`].
pub struct Gateway {
    pub running: gateway_simulator::Running,
    _dir: tempfile::TempDir,
}

impl Gateway {
    pub fn start() -> Self {
        let settings = crate::test_settings(ServiceKind::Payment, &[]);
        let dir = tempfile::tempdir().expect("a temporary directory for the gateway's journal");
        let config = gateway_simulator::Config {
            host: "127.0.0.1".into(),
            port: 0,
            journal: dir.path().join("journal.jsonl"),
            api_key: settings.gateway.as_ref().map(|g| g.api_key.expose().clone()).unwrap_or_default(),
            webhook_url: None,
            webhook_secret: settings.signing.gateway_webhook[0].expose().clone(),
            latency: std::time::Duration::ZERO,
            failure_rate: 0.0,
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port for the gateway");
        let running = gateway_simulator::start(config, listener).expect("starting the gateway simulator");
        Self { running, _dir: dir }
    }

    /// The `GATEWAY_URL` setting that points a payment service here.
    pub fn setting(&self) -> (&'static str, String) {
        ("GATEWAY_URL", self.running.url.clone())
    }

    /// Sends the simulator's events to the payment service at `base_url`.
    pub fn send_events_to(&self, base_url: &str) {
        self.running.simulator.set_webhook_url(&format!("{base_url}/v1/webhooks/gateway"));
    }
}
