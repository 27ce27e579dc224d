//! Host name resolution for the upstream agents, cached.
//!
//! ureq resolves the host on every call, even when it then reuses a pooled
//! connection, and with a timeout set its default resolver runs each lookup
//! on a thread of its own. At thousands of calls a second that is thousands
//! of thread spawns (each maps and unmaps a signal stack, which makes the
//! kernel flush the TLB on every core) plus a getaddrinfo call each: it
//! was most of the workers' CPU in the v1 benchmark. A lookup is only needed
//! to open a new connection, and the upstream's addresses change rarely, so
//! one lookup per host serves every call for [`TTL`].

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long resolved addresses are used before the next lookup. Only new
/// connections use them: pooled connections to a moved host keep working
/// until the upstream closes them.
pub const TTL: Duration = Duration::from_secs(60);

/// Resolves through `inner` (the system resolver, with ureq's timeout) at
/// most once per host and port per [`TTL`]; IP literals need no lookup.
pub struct CachingResolver<R = DefaultResolver> {
    inner: R,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl CachingResolver {
    pub fn new() -> CachingResolver {
        CachingResolver::with_inner(DefaultResolver::default(), TTL)
    }
}

impl Default for CachingResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Resolver> CachingResolver<R> {
    pub fn with_inner(inner: R, ttl: Duration) -> CachingResolver<R> {
        CachingResolver {
            inner,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl<R> fmt::Debug for CachingResolver<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingResolver")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<R: Resolver> Resolver for CachingResolver<R> {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            // Not a full URL: let ureq's resolver refuse it in its own words.
            return self.inner.resolve(uri, config, timeout);
        };
        let port = authority.port_u16().or_else(|| match scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        });
        let Some(port) = port else {
            return self.inner.resolve(uri, config, timeout);
        };
        let host = authority.host();
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            let mut addrs = self.empty();
            addrs.push(SocketAddr::new(ip, port));
            return Ok(addrs);
        }
        let key = format!("{host}:{port}");
        let now = Instant::now();
        if let Some((at, addrs)) = self.cache.lock().get(&key) {
            if now.duration_since(*at) < self.ttl {
                return Ok(addrs.clone());
            }
        }
        // The lookup runs unlocked: a slow DNS server delays only the
        // callers that need it, and a few concurrent refreshes are harmless.
        let addrs = self.inner.resolve(uri, config, timeout)?;
        self.cache.lock().insert(key, (now, addrs.clone()));
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Answers 192.0.2.7 for every host and counts the lookups.
    #[derive(Debug, Default)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        fail: bool,
    }

    impl Resolver for Counting {
        fn resolve(
            &self,
            uri: &Uri,
            _: &Config,
            _: NextTimeout,
        ) -> Result<ResolvedSocketAddrs, ureq::Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return Err(ureq::Error::HostNotFound);
            }
            let port = uri.port_u16().unwrap_or(443);
            let mut v = self.empty();
            v.push(SocketAddr::new([192, 0, 2, 7].into(), port));
            Ok(v)
        }
    }

    /// A cache over [`Counting`], and its lookup count.
    fn counting(fail: bool, ttl: Duration) -> (CachingResolver<Counting>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let inner = Counting {
            calls: calls.clone(),
            fail,
        };
        (CachingResolver::with_inner(inner, ttl), calls)
    }

    fn resolve<R: Resolver>(r: &CachingResolver<R>, url: &str) -> Result<Vec<SocketAddr>, String> {
        let uri: Uri = url.parse().unwrap();
        let config = Config::default();
        let timeout = NextTimeout {
            after: ureq::unversioned::transport::time::Duration::from_secs(5),
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        r.resolve(&uri, &config, timeout)
            .map(|a| a.iter().copied().collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn one_lookup_per_host_and_port_until_the_ttl() {
        let (r, calls) = counting(false, Duration::from_millis(200));
        let want = vec!["192.0.2.7:443".parse::<SocketAddr>().unwrap()];
        for _ in 0..100 {
            assert_eq!(
                resolve(&r, "https://fcm.googleapis.com/v1/x").unwrap(),
                want
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Another port is another entry.
        assert_eq!(
            resolve(&r, "http://fcm.googleapis.com:8080/").unwrap(),
            vec!["192.0.2.7:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Expired: looked up again, once.
        let deadline = Instant::now() + Duration::from_secs(5);
        while calls.load(Ordering::SeqCst) == 2 && Instant::now() < deadline {
            resolve(&r, "https://fcm.googleapis.com/").unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn ip_literals_need_no_lookup() {
        let (r, calls) = counting(false, TTL);
        assert_eq!(
            resolve(&r, "http://127.0.0.1:5601/fcm/send").unwrap(),
            vec!["127.0.0.1:5601".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve(&r, "https://[::1]/x").unwrap(),
            vec!["[::1]:443".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn failures_are_not_cached() {
        let (r, calls) = counting(true, TTL);
        assert!(resolve(&r, "https://nowhere.invalid/").is_err());
        assert!(resolve(&r, "https://nowhere.invalid/").is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
