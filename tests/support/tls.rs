//! HTTPS for the loopback mock, and the network pieces around it: a CA and
//! certificates made for this run (no key material in the repository), a
//! TLS front that serves the mock's plain handler over HTTPS, a CONNECT
//! proxy, and a server that accepts and never answers. Examples include
//! this file by path, as they do mock.rs.
#![allow(dead_code)] // each user takes a different part of it

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The names the mock's usual certificate is for.
pub const MOCK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "api.persistiq.test"];

/// A certificate authority made for this run.
pub struct TestCa {
    /// Its certificate, PEM: what a user would give as the company CA.
    pub pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A server certificate and its key.
#[derive(Clone)]
pub struct ServerCert {
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (host names or IP addresses), valid from
    /// 1975 to 4096, or, when `expired`, for two days in 2020.
    pub fn server_cert(&self, names: &[&str], expired: bool) -> ServerCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mock server");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 3);
        }
        let key = rcgen::KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        ServerCert {
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
        }
    }
}

/// An HTTPS front for a plain HTTP server on loopback: each TLS connection
/// gets a connection of its own to `backend`, and the plain bytes pass
/// between them, so that the mock's one handler serves both.
pub struct TlsFront {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl TlsFront {
    pub fn start(backend: SocketAddr, cert: &ServerCert) -> TlsFront {
        TlsFront::start_on("127.0.0.1:0", backend, cert).expect("bind the TLS front")
    }

    pub fn start_on(
        bind: &str,
        backend: SocketAddr,
        cert: &ServerCert,
    ) -> std::io::Result<TlsFront> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(cert.chain.clone(), key)
            .expect("server certificate and key");
        let config = Arc::new(config);
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let config = config.clone();
                thread::spawn(move || {
                    let _ = terminate(conn, backend, config);
                });
            }
        });
        Ok(TlsFront { addr, stop })
    }

    /// `https://HOST:PORT/v1/` of this front.
    pub fn base_url(&self, host: &str) -> String {
        format!("https://{host}:{}/v1/", self.addr.port())
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Decrypts one client connection into `backend` and encrypts the answers
/// back: one thread each way, sharing the TLS state under a lock.
fn terminate(
    client: TcpStream,
    backend: SocketAddr,
    config: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let plain = TcpStream::connect(backend)?;
    let _ = plain.set_nodelay(true);
    let tls = Arc::new(Mutex::new(
        rustls::ServerConnection::new(config).map_err(std::io::Error::other)?,
    ));
    let (tls_back, mut client_out, mut plain_in) =
        (tls.clone(), client.try_clone()?, plain.try_clone()?);
    // Answers: plain from the backend, encrypted to the client.
    let answers = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = plain_in.read(&mut buf).unwrap_or(0);
            let mut tls = tls_back.lock().unwrap();
            if n == 0 {
                tls.send_close_notify();
            } else if tls.writer().write_all(&buf[..n]).is_err() {
                break;
            }
            while tls.wants_write() {
                if tls.write_tls(&mut client_out).is_err() {
                    return;
                }
            }
            if n == 0 {
                let _ = client_out.shutdown(Shutdown::Both);
                return;
            }
        }
    });
    // Requests: encrypted from the client, plain to the backend.
    let (mut client_in, mut client_out, mut plain_out) = (client.try_clone()?, client, plain);
    let mut buf = vec![0u8; 64 * 1024];
    let mut clear = Vec::new();
    'conn: loop {
        let n = client_in.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        clear.clear();
        {
            let mut tls = tls.lock().unwrap();
            let mut input = &buf[..n];
            while !input.is_empty() {
                if tls.read_tls(&mut input).is_err() {
                    break 'conn;
                }
                let state = tls.process_new_packets();
                while tls.wants_write() {
                    if tls.write_tls(&mut client_out).is_err() {
                        break 'conn;
                    }
                }
                if state.is_err() {
                    break 'conn;
                }
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    match tls.reader().read(&mut chunk) {
                        Ok(0) => break,
                        Ok(k) => clear.extend_from_slice(&chunk[..k]),
                        Err(_) => break,
                    }
                }
            }
        }
        if !clear.is_empty() && plain_out.write_all(&clear).is_err() {
            break;
        }
    }
    let _ = plain_out.shutdown(Shutdown::Both);
    let _ = answers.join();
    Ok(())
}

/// How the CONNECT proxy answers.
#[derive(Clone, Debug)]
pub enum ProxyMode {
    /// Open tunnels to `host` (any port) by connecting to `to`; with
    /// `auth`, only for a request whose `Proxy-Authorization` is that value
    /// (else 407); any other host is answered 403.
    Tunnel {
        host: String,
        to: SocketAddr,
        auth: Option<String>,
    },
    /// Answer every CONNECT with this status.
    Refuse(u16),
    /// Close the connection without an answer.
    Hangup,
}

/// A CONNECT proxy on loopback that keeps everything clients sent it.
pub struct ConnectProxy {
    pub addr: SocketAddr,
    /// Every byte clients sent, request heads and tunnelled bytes alike.
    pub sent: Arc<Mutex<Vec<u8>>>,
    /// The request heads, one string each.
    pub heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl ConnectProxy {
    pub fn start(mode: ProxyMode) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, h, stopped) = (sent.clone(), heads.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, h, mode) = (s.clone(), h.clone(), mode.clone());
                thread::spawn(move || proxy_connection(conn, &mode, &s, &h));
            }
        });
        ConnectProxy {
            addr,
            sent,
            heads,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT`, or with `user:password@` when given.
    pub fn url(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(c) => format!("http://{c}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Everything clients sent, as text (lossy).
    pub fn sent_text(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn proxy_connection(
    conn: TcpStream,
    mode: &ProxyMode,
    sent: &Arc<Mutex<Vec<u8>>>,
    heads: &Arc<Mutex<Vec<String>>>,
) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let Some(head) = super::mock::read_head(&mut reader) else {
        return;
    };
    sent.lock().unwrap().extend_from_slice(head.as_bytes());
    heads.lock().unwrap().push(head.clone());
    let mut client = conn;
    let answer = |client: &mut TcpStream, status: u16, extra: &str| {
        let text = format!("HTTP/1.1 {status} Proxy Says No\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = client.write_all(text.as_bytes());
        let _ = client.shutdown(Shutdown::Both);
    };
    let (host, to, auth) = match mode {
        ProxyMode::Refuse(status) => return answer(&mut client, *status, ""),
        ProxyMode::Hangup => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        ProxyMode::Tunnel { host, to, auth } => (host, *to, auth),
    };
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let target_host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    let given = super::mock::header(&head, "proxy-authorization").map(str::to_string);
    if method != "CONNECT" || !target_host.eq_ignore_ascii_case(host) {
        return answer(&mut client, 403, "");
    }
    if auth.is_some() && given.as_ref() != auth.as_ref() {
        return answer(
            &mut client,
            407,
            "Proxy-Authenticate: Basic realm=\"mock\"\r\n",
        );
    }
    let Ok(upstream) = TcpStream::connect(to) else {
        return answer(&mut client, 502, "");
    };
    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    let (mut up_in, mut client_out) = match (upstream.try_clone(), client.try_clone()) {
        (Ok(u), Ok(c)) => (u, c),
        _ => return,
    };
    let down = thread::spawn(move || {
        let _ = std::io::copy(&mut up_in, &mut client_out);
        let _ = client_out.shutdown(Shutdown::Both);
    });
    // Bytes the reader buffered past the head are the tunnel's first.
    let early = reader.buffer().to_vec();
    let mut up_out = upstream;
    sent.lock().unwrap().extend_from_slice(&early);
    if up_out.write_all(&early).is_ok() {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = reader.get_mut().read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            sent.lock().unwrap().extend_from_slice(&buf[..n]);
            if up_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }
    let _ = up_out.shutdown(Shutdown::Both);
    let _ = down.join();
}

/// A loopback port where no connection ever opens, as behind a firewall
/// that drops packets: a listener whose queue (a backlog of 0) holds one
/// connection never accepted, so the kernel drops every later SYN.
pub struct SilentPort {
    pub port: u16,
    _listener: TcpListener,
    _queued: TcpStream,
}

impl SilentPort {
    pub fn start() -> SilentPort {
        use std::os::fd::AsRawFd;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the silent port");
        // SAFETY: listen(2) on the listener's own open socket; a second
        // listen only changes its backlog.
        let set = unsafe { libc::listen(listener.as_raw_fd(), 0) };
        assert_eq!(set, 0, "listen(fd, 0): {}", std::io::Error::last_os_error());
        let port = listener.local_addr().unwrap().port();
        let queued = TcpStream::connect(("127.0.0.1", port)).expect("the one queued connection");
        let probe = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            std::time::Duration::from_millis(300),
        );
        assert!(
            probe.is_err(),
            "a second connection opened: the port is not silent"
        );
        SilentPort {
            port,
            _listener: listener,
            _queued: queued,
        }
    }
}

/// A server that accepts connections and never says a word: a TLS
/// handshake with it never completes.
pub struct Staller {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Staller {
    pub fn start() -> Staller {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the staller");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                held.extend(conn.ok());
            }
        });
        Staller { addr, stop }
    }
}

impl Drop for Staller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}
