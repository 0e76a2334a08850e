//! The production proxy configuration (`config/nginx/production.conf`) run by a real nginx in front of the
//! service: it forwards the API and does not serve `/metrics` to the public.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use billing_testkit::{poll_until, repo_root};

use crate::common::Ctx;

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn nginx_binary() -> String {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("nginx is not installed (env-manager.sh -e test test installs nginx-light)"))
}

#[tokio::test]
async fn the_production_proxy_forwards_the_api_but_not_metrics() {
    let ctx = Ctx::new().await;
    let upstream = ctx.app.base_url.trim_start_matches("http://").to_owned();
    let (sub_port, pay_port) = (free_port(), free_port());
    let shipped =
        std::fs::read_to_string(repo_root().join("config/nginx/production.conf")).unwrap_or_else(|e| panic!("{e}"));
    // The shipped file, with the compose service names and public ports pointed at this test's service.
    let site = shipped
        .replace("server subscription-service:8001;", &format!("server {upstream};"))
        .replace("server payment-service:8002;", &format!("server {upstream};"))
        .replace("listen 8001;", &format!("listen 127.0.0.1:{sub_port};"))
        .replace("listen 8002;", &format!("listen 127.0.0.1:{pay_port};"));
    assert!(!site.contains("server subscription-service") && site.contains(&format!(":{pay_port};")), "{site}");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = dir.path().display().to_string();
    std::fs::write(dir.path().join("site.conf"), site).unwrap_or_else(|e| panic!("{e}"));
    let main = format!(
        "daemon off; worker_processes 1; pid {root}/nginx.pid; error_log {root}/error.log;\n\
         events {{}}\n\
         http {{ access_log off; client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;\n\
         fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;\n\
         include {root}/site.conf; }}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), main).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(nginx_binary())
        .args(["-p", &root, "-c", &format!("{root}/nginx.conf")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("nginx: {e}"));
    let _nginx = Nginx(child);
    let http = reqwest::Client::new();
    for port in [sub_port, pay_port] {
        let base = format!("http://127.0.0.1:{port}");
        let health = format!("{base}/v1/health/");
        poll_until(Duration::from_secs(15), "nginx to forward the health route", || async {
            http.get(&health).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
        let plans = http.get(format!("{base}/v1/plans")).send().await.map(|r| r.status().as_u16());
        assert_eq!(plans.ok(), Some(200), "the API goes through");
        for path in ["/metrics", "/metrics/", "//metrics", "/v1/../metrics", "/metrics?format=text"] {
            let status = http.get(format!("{base}{path}")).send().await.map(|r| r.status().as_u16());
            assert_eq!(status.ok(), Some(404), "{path} through the public proxy");
        }
    }
    // The service itself still serves it, for the scraper on the internal network.
    let direct = http.get(ctx.app.url("/metrics")).send().await.map(|r| r.status().as_u16());
    assert_eq!(direct.ok(), Some(200));
}
