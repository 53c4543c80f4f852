//! Certificates for local use: a CA, and one certificate per region that
//! names the region (`concord certs`, the demo, the tests).
//!
//! A region's certificate carries the DNS name
//! `<region>.region.concord` ([`region_dns_name`]): a node dialing a peer
//! checks that the peer's certificate is valid for that name, and a node
//! taking a replication stream checks that the caller's certificate names
//! the region its hello claims ([`crate::tls::cert_regions`]). It also
//! names `localhost`, `127.0.0.1` and `::1` (and any extra hosts), so that
//! clients on the machine can dial `https://127.0.0.1:PORT`. The same
//! certificate serves (server authentication) and dials peers (client
//! authentication).
//!
//! ```
//! # fn main() -> Result<(), concord_node::NodeError> {
//! use concord_node::certs::{CertAuthority, region_dns_name};
//!
//! let ca = CertAuthority::new("Concord test CA")?;
//! let eu = ca.region("eu-west", &[])?;
//! assert!(eu.cert.starts_with("-----BEGIN CERTIFICATE-----"));
//! let der = concord_node::tls::pem_certs(eu.cert.as_bytes(), "cert")?;
//! assert_eq!(concord_node::tls::cert_regions(&der[0]), vec!["eu-west".to_owned()]);
//! assert_eq!(region_dns_name("eu-west"), "eu-west.region.concord");
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::NodeError;

/// The DNS suffix under which region certificates name their region.
pub const REGION_DOMAIN: &str = "region.concord";

/// The DNS name a region's certificate carries: `<region>.region.concord`.
pub fn region_dns_name(region: &str) -> String {
    format!("{region}.{REGION_DOMAIN}")
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPem {
    /// The certificate (PEM).
    pub cert: String,
    /// The private key (PKCS#8 PEM).
    pub key: String,
}

/// When a certificate is valid, as calendar dates (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// First valid day: (year, month, day).
    pub not_before: (i32, u8, u8),
    /// Last valid day: (year, month, day).
    pub not_after: (i32, u8, u8),
}

impl Validity {
    /// From a year ago to `years` years from now.
    pub fn years(years: i32) -> Self {
        let now = current_year();
        Self {
            not_before: (now - 1, 1, 1),
            not_after: (now + years, 12, 31),
        }
    }

    /// Valid only in the past (ended a year ago): an expired certificate.
    pub fn expired() -> Self {
        let now = current_year();
        Self {
            not_before: (now - 3, 1, 1),
            not_after: (now - 1, 1, 1),
        }
    }
}

fn current_year() -> i32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    1970 + i32::try_from(secs / 31_556_952).unwrap_or(0)
}

fn gen_error(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> NodeError {
    let what = what.into();
    move |e| NodeError::CertGen {
        what,
        reason: e.to_string(),
    }
}

/// A certificate authority held in memory: it signs region certificates.
pub struct CertAuthority {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

impl CertAuthority {
    /// A new self-signed CA called `name`, valid for ten years.
    pub fn new(name: &str) -> Result<Self, NodeError> {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(gen_error("the CA"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "Concord");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, Validity::years(10));
        let key = KeyPair::generate().map_err(gen_error("the CA key"))?;
        let cert = params.self_signed(&key).map_err(gen_error("the CA"))?;
        Ok(Self {
            cert_pem: cert.pem(),
            params,
            key,
        })
    }

    /// The CA certificate (PEM): what every node and client trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key (PEM), to sign more certificates later.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for `region`, valid for five years, naming the region,
    /// `localhost`, `127.0.0.1`, `::1` and `hosts` (DNS names or IPs).
    pub fn region(&self, region: &str, hosts: &[String]) -> Result<CertPem, NodeError> {
        self.region_with(region, hosts, Validity::years(5))
    }

    /// Like [`CertAuthority::region`], valid for `validity` (tests make an
    /// expired one).
    pub fn region_with(
        &self,
        region: &str,
        hosts: &[String],
        validity: Validity,
    ) -> Result<CertPem, NodeError> {
        let what = format!("the certificate of {region}");
        let mut names = vec![
            region_dns_name(region),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        for h in hosts {
            if !names.contains(h) {
                names.push(h.clone());
            }
        }
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_error(&what))?;
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(gen_error(format!("{what} (host {n:?})"))),
            })
            .collect::<Result<_, _>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, region_dns_name(region));
        dn.push(DnType::OrganizationName, "Concord");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        set_validity(&mut params, validity);
        let key = KeyPair::generate().map_err(gen_error(&what))?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(gen_error(&what))?;
        Ok(CertPem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

fn set_validity(params: &mut CertificateParams, v: Validity) {
    let (y, m, d) = v.not_before;
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = v.not_after;
    params.not_after = rcgen::date_time_ymd(y, m, d);
}

/// The files [`write_region_files`] and [`generate`] write for one region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionFiles {
    /// The region.
    pub region: String,
    /// Its certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), NodeError> {
    let io = |source| NodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, text).map_err(io)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    Ok(())
}

/// Writes `<dir>/<region>.pem` and `<dir>/<region>.key`.
pub fn write_region_files(
    dir: &Path,
    region: &str,
    pem: &CertPem,
) -> Result<RegionFiles, NodeError> {
    let cert = dir.join(format!("{region}.pem"));
    let key = dir.join(format!("{region}.key"));
    write(&cert, &pem.cert, false)?;
    write(&key, &pem.key, true)?;
    Ok(RegionFiles {
        region: region.to_owned(),
        cert,
        key,
    })
}

/// What [`generate`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// The CA certificate: `<out>/ca.pem` (give it to every node and client).
    pub ca: PathBuf,
    /// The CA key: `<out>/ca.key` (keep it offline; it signs new regions).
    pub ca_key: PathBuf,
    /// One certificate and key per region.
    pub regions: Vec<RegionFiles>,
}

/// `concord certs`: a new CA and a certificate per region under `out`
/// (created if missing). Each region's certificate names the region,
/// loopback, and `hosts`.
pub fn generate(out: &Path, regions: &[String], hosts: &[String]) -> Result<Generated, NodeError> {
    if regions.is_empty() {
        return Err(NodeError::Config {
            field: "--regions".into(),
            reason: "no regions: give a comma-separated list, e.g. us-east,eu-west".into(),
        });
    }
    for (i, r) in regions.iter().enumerate() {
        if r.is_empty()
            || !r
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(NodeError::Config {
                field: format!("--regions[{i}]"),
                reason: format!(
                    "{r:?}: a region name for a certificate is A-Z, a-z, 0-9, '-' or '.'"
                ),
            });
        }
    }
    std::fs::create_dir_all(out).map_err(|source| NodeError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let ca = CertAuthority::new("Concord local CA")?;
    let ca_path = out.join("ca.pem");
    let ca_key = out.join("ca.key");
    write(&ca_path, ca.cert_pem(), false)?;
    write(&ca_key, &ca.key_pem(), true)?;
    let mut files = Vec::with_capacity(regions.len());
    for r in regions {
        let pem = ca.region(r, hosts)?;
        files.push(write_region_files(out, r, &pem)?);
    }
    Ok(Generated {
        ca: ca_path,
        ca_key,
        regions: files,
    })
}

/// The process-wide local PKI of the demo, the tests and the examples: one
/// CA, certificates made on first use per region name, and one admin token.
///
/// Made by [`local`]. Once it exists, [`crate::client::Client::connect`]
/// trusts its CA and sends its admin token (see
/// [`crate::client::ClientOptions::local`]).
pub struct LocalPki {
    ca: CertAuthority,
    token: String,
    regions: Mutex<Vec<(String, CertPem)>>,
}

static LOCAL: OnceLock<LocalPki> = OnceLock::new();

/// The process's local PKI, made on the first call.
pub fn local() -> Result<&'static LocalPki, NodeError> {
    if let Some(l) = LOCAL.get() {
        return Ok(l);
    }
    let made = LocalPki {
        ca: CertAuthority::new("Concord local CA (in-process)")?,
        token: crate::auth::generate_token()?,
        regions: Mutex::new(Vec::new()),
    };
    // Another thread may have won the race: either one is fine.
    let _ = LOCAL.set(made);
    LOCAL.get().ok_or(NodeError::CertGen {
        what: "the local PKI".into(),
        reason: "not initialised".into(),
    })
}

/// The local PKI if [`local`] made it already.
pub fn local_if_made() -> Option<&'static LocalPki> {
    LOCAL.get()
}

impl LocalPki {
    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The CA, to sign more certificates (tests).
    pub fn ca(&self) -> &CertAuthority {
        &self.ca
    }

    /// The admin token every local configuration lists (as its sha256).
    pub fn admin_token(&self) -> &str {
        &self.token
    }

    /// The certificate of `region`, made on first use.
    pub fn region(&self, region: &str) -> Result<CertPem, NodeError> {
        let mut regions = self.regions.lock().map_err(|_| NodeError::CertGen {
            what: format!("the certificate of {region}"),
            reason: "the local PKI's lock is poisoned".into(),
        })?;
        if let Some((_, pem)) = regions.iter().find(|(r, _)| r == region) {
            return Ok(pem.clone());
        }
        let pem = self.ca.region(region, &[])?;
        regions.push((region.to_owned(), pem.clone()));
        Ok(pem)
    }

    /// Writes `ca.pem` and `region`'s certificate and key into `dir`
    /// (created if missing).
    pub fn write_region(
        &self,
        dir: &Path,
        region: &str,
    ) -> Result<(PathBuf, RegionFiles), NodeError> {
        std::fs::create_dir_all(dir).map_err(|source| NodeError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let ca = dir.join("ca.pem");
        write(&ca, self.ca_pem(), false)?;
        let files = write_region_files(dir, region, &self.region(region)?)?;
        Ok((ca, files))
    }
}
