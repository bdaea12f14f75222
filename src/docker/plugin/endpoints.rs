//! The plugin protocol's calls: the request bodies dockerd sends (only the
//! fields we read; others are ignored) and the replies, as the original
//! plugin shaped them. Every call is answered with a JSON body; a failure
//! is a message in `Err` (network driver) or `Error` (IPAM driver).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::http::json::write_string;
use crate::http::parse_json;

/// Which error field a call's reply carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// `NetworkDriver.*`: `Err`.
    Network,
    /// `IpamDriver.*`: `Error`.
    Ipam,
}

impl Family {
    fn field(self) -> &'static str {
        match self {
            Family::Network => "Err",
            Family::Ipam => "Error",
        }
    }
}

/// A reply body under construction: the error field first (empty on
/// success), then the call's own fields, in the original's order.
pub(super) struct Body(String);

impl Body {
    /// `{"Err":""` or `{"Error":""`.
    pub(super) fn ok(family: Family) -> Body {
        Body(format!("{{\"{}\":\"\"", family.field()))
    }

    /// `{"Err":"<why>"}` or `{"Error":"<why>"}`.
    pub(super) fn error(family: Family, why: &str) -> String {
        let mut s = format!("{{\"{}\":", family.field());
        write_string(&mut s, why);
        s.push('}');
        s
    }

    /// `,"key":"value"`.
    pub(super) fn string(mut self, key: &str, v: &str) -> Body {
        self.0.push(',');
        write_string(&mut self.0, key);
        self.0.push(':');
        write_string(&mut self.0, v);
        self
    }

    /// `,"key":<json>` for a value that is already JSON (`null`, `true`,
    /// an object written here).
    pub(super) fn literal(mut self, key: &str, json: &str) -> Body {
        self.0.push(',');
        write_string(&mut self.0, key);
        self.0.push(':');
        self.0.push_str(json);
        self
    }

    pub(super) fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// Decodes a request body; the error text is the reply's (`Error: <why>`,
/// as the original said when a body did not decode).
pub(super) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    parse_json(body).map_err(|e| format!("Error: {e}"))
}

/// `IPv4Data[i]` of CreateNetwork.
#[derive(Debug, Default, Deserialize)]
pub(super) struct IpamData {
    #[serde(rename = "Gateway", default)]
    pub gateway: Option<String>,
    #[serde(rename = "Pool", default)]
    pub pool: Option<String>,
}

/// `NetworkDriver.CreateNetwork`.
#[derive(Debug, Deserialize)]
pub(super) struct CreateNetwork {
    #[serde(rename = "NetworkID", default)]
    pub network_id: String,
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, serde_yaml::Value>>,
    #[serde(rename = "IPv4Data", default)]
    pub ipv4_data: Option<Vec<IpamData>>,
}

impl CreateNetwork {
    /// `Options["com.docker.network.generic"]["bridge"]`, which must be a
    /// string.
    pub(super) fn bridge(&self) -> Result<&str, String> {
        let generic = self
            .options
            .as_ref()
            .and_then(|o| o.get("com.docker.network.generic"))
            .ok_or("network option com.docker.network.generic is missing")?;
        match generic.get("bridge") {
            Some(serde_yaml::Value::String(s)) => Ok(s),
            Some(_) => Err("network option bridge is not a string".into()),
            None => Err(
                "network option bridge is missing (docker network create -o bridge=<bridge alias>)"
                    .into(),
            ),
        }
    }
}

/// `NetworkDriver.DeleteNetwork`.
#[derive(Debug, Deserialize)]
pub(super) struct NetworkRef {
    #[serde(rename = "NetworkID", default)]
    pub network_id: String,
}

/// `CreateEndpoint.Interface`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Interface {
    #[serde(rename = "Address", default)]
    pub address: Option<String>,
}

/// `NetworkDriver.CreateEndpoint`.
#[derive(Debug, Deserialize)]
pub(super) struct CreateEndpoint {
    #[serde(rename = "NetworkID", default)]
    pub network_id: String,
    #[serde(rename = "EndpointID", default)]
    pub endpoint_id: String,
    #[serde(rename = "Interface", default)]
    pub interface: Option<Interface>,
}

/// DeleteEndpoint, Join, Leave, EndpointOperInfo, the external
/// connectivity calls: a network and an endpoint.
#[derive(Debug, Deserialize)]
pub(super) struct EndpointRef {
    #[serde(rename = "NetworkID", default)]
    pub network_id: String,
    #[serde(rename = "EndpointID", default)]
    pub endpoint_id: String,
}

/// DiscoverNew, DiscoverDelete: read and ignored (local scope).
#[derive(Debug, Deserialize)]
pub(super) struct Discovery {
    #[serde(rename = "DiscoveryType", default)]
    pub _kind: Option<i64>,
}

/// `IpamDriver.RequestPool`.
#[derive(Debug, Deserialize)]
pub(super) struct RequestPool {
    #[serde(rename = "Pool", default)]
    pub pool: Option<String>,
    #[serde(rename = "SubPool", default)]
    pub sub_pool: Option<String>,
    #[serde(rename = "V6", default)]
    pub v6: Option<bool>,
}

/// `IpamDriver.ReleasePool`.
#[derive(Debug, Deserialize)]
pub(super) struct PoolRef {
    #[serde(rename = "PoolID", default)]
    pub pool_id: String,
}

/// `IpamDriver.RequestAddress`, `ReleaseAddress`.
#[derive(Debug, Deserialize)]
pub(super) struct AddressRequest {
    #[serde(rename = "PoolID", default)]
    pub pool_id: String,
    #[serde(rename = "Address", default)]
    pub address: Option<String>,
}

/// An IPv4 CIDR as written (`a.b.c.d/n`, canonical dotted quad, `n` ≤ 32).
pub(super) fn cidr4(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = s.split_once('/')?;
    let ip = ip4(a)?;
    if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u8 = p.parse().ok()?;
    (n <= 32).then_some((ip, n))
}

/// An IPv4 address in canonical dotted-quad form.
pub(super) fn ip4(s: &str) -> Option<Ipv4Addr> {
    s.parse::<Ipv4Addr>().ok().filter(|ip| ip.to_string() == s)
}

/// The network address of `ip`/`prefix`.
pub(super) fn masked(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(u32::from(ip) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert_eq!(Body::ok(Family::Network).finish(), r#"{"Err":""}"#);
        assert_eq!(
            Body::ok(Family::Ipam)
                .string("PoolID", "p")
                .literal("Data", "null")
                .finish(),
            r#"{"Error":"","PoolID":"p","Data":null}"#
        );
        assert_eq!(
            Body::error(Family::Ipam, "a \"b\""),
            r#"{"Error":"a \"b\""}"#
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(
            cidr4("172.16.5.0/28"),
            Some((Ipv4Addr::new(172, 16, 5, 0), 28))
        );
        for bad in [
            "172.16.5.0",
            "172.16.5.0/33",
            "172.16.5.0/",
            "1.2.3/8",
            "01.2.3.4/8",
            "1.2.3.4/+8",
            "::1/8",
        ] {
            assert_eq!(cidr4(bad), None, "{bad}");
        }
        assert_eq!(
            masked(Ipv4Addr::new(172, 16, 5, 7), 28),
            Ipv4Addr::new(172, 16, 5, 0)
        );
        assert_eq!(masked(Ipv4Addr::new(1, 2, 3, 4), 0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            masked(Ipv4Addr::new(1, 2, 3, 4), 32),
            Ipv4Addr::new(1, 2, 3, 4)
        );
    }
}
