//! What `--format auto` recognises, and how: the table `whipstream formats`
//! prints and README.md shows (a test checks that the two agree).

use super::Format;

/// One recognised log format.
pub struct FormatInfo {
    /// `--format` name that forces it.
    pub format: Format,
    /// The logs it covers.
    pub covers: &'static str,
    /// Where the client address comes from.
    pub client: &'static str,
    /// Where the event time comes from.
    pub time: &'static str,
}

/// Every format, in the order auto-detection tries them.
pub const FORMATS: &[FormatInfo] = &[
    FormatInfo {
        format: Format::W3c,
        covers: "W3C extended: IIS, AWS CloudFront, any `#Fields:` log (header per file, may change mid-file)",
        client: "`c-ip` column",
        time: "`date` + `time` columns (UTC)",
    },
    FormatInfo {
        format: Format::Json,
        covers: "JSON lines: nginx `escape=json`, Caddy, Traefik, Envoy/Istio JSON, Google Cloud LB, Cloudflare Logpush, ECS",
        client: "`remote_addr`, `request.remote_ip`, `ClientHost`, `downstream_remote_address`, `httpRequest.remoteIp`, `ClientIP`, ... (`--ip-field`)",
        time: "`StartUTC`, `start_time`, `EdgeStartTimestamp`, `@timestamp`, `timestamp`, `time`, `msec`, `time_iso8601`, `time_local`, `ts` (`--time-field`); RFC 3339, access-log or epoch s/ms/us/ns",
    },
    FormatInfo {
        format: Format::Envoy,
        covers: "Envoy and Istio default text formats",
        client: "`%DOWNSTREAM_REMOTE_ADDRESS%` (Istio); `X-Forwarded-For` (plain Envoy)",
        time: "`[%START_TIME%]`",
    },
    FormatInfo {
        format: Format::Combined,
        covers: "Apache/nginx `combined`, `common`, `vhost_combined`, combined + extra fields",
        client: "remote host (`%h`, `$remote_addr`)",
        time: "`[%d/%b/%Y:%T %z]`",
    },
    FormatInfo {
        format: Format::Haproxy,
        covers: "HAProxy HTTP and TCP logs, with or without syslog prefix",
        client: "`client_ip:port`",
        time: "`[accept_date]` with ms, no offset (`--timezone`)",
    },
    FormatInfo {
        format: Format::Elb,
        covers: "AWS Application Load Balancer and Classic ELB",
        client: "`client:port`",
        time: "ISO 8601 time field (UTC)",
    },
    FormatInfo {
        format: Format::Squid,
        covers: "Squid native `access.log`",
        client: "client column",
        time: "epoch seconds with ms",
    },
    FormatInfo {
        format: Format::Regex,
        covers: "anything else: `--regex` with named groups (never auto-detected)",
        client: "group `ip`",
        time: "group `time` (`--time-format`), else the first time in the line",
    },
];

/// The table as Markdown (what `whipstream formats` prints).
pub fn markdown() -> String {
    let mut out =
        String::from("| `--format` | logs | client address | event time |\n|---|---|---|---|\n");
    for f in FORMATS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            f.format.name(),
            f.covers,
            f.client,
            f.time
        ));
    }
    out
}
