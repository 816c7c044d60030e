//! A small HTTP/1.1 static file server for fault tests: it counts requests and can fail
//! on purpose (die after N objects, corrupt one object, 404, 500, stall).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub enum Fault {
    #[default]
    None,
    /// Close every connection and stop answering once this many objects were served.
    DieAfterObjects(u64),
    /// Serve these bytes for paths ending with the given suffix.
    WrongBytes(String, Vec<u8>),
    /// 404 for paths ending with the given suffix.
    NotFound(String),
    /// 500 for every object request.
    ServerError,
    /// Accept, read the request, never answer.
    Stall,
}

pub struct Server {
    pub url: String,
    pub object_requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

pub fn start(root: PathBuf, fault: Fault) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicU64::new(0));
    let object_requests = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let paths = Arc::new(Mutex::new(Vec::new()));
    let (r, o, s, p) = (
        requests.clone(),
        object_requests.clone(),
        stop.clone(),
        paths.clone(),
    );
    std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let (root, fault, r, o, s, p) = (
                        root.clone(),
                        fault.clone(),
                        r.clone(),
                        o.clone(),
                        s.clone(),
                        p.clone(),
                    );
                    std::thread::spawn(move || {
                        let _ = connection(stream, &root, &fault, &r, &o, &s, &p);
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Server {
        url,
        object_requests,
        stop,
    }
}

fn connection(
    stream: TcpStream,
    root: &std::path::Path,
    fault: &Fault,
    requests: &AtomicU64,
    objects: &AtomicU64,
    stop: &AtomicBool,
    paths: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            match reader.read_line(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => break,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut content_length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut discard = vec![0; content_length];
        reader.read_exact(&mut discard)?;
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        requests.fetch_add(1, Ordering::SeqCst);
        paths.lock().unwrap().push(path.clone());
        let is_object = path.starts_with("/objects/");
        let (status, body): (&str, Vec<u8>) = match fault {
            Fault::Stall => {
                std::thread::sleep(Duration::from_secs(30));
                return Ok(());
            }
            Fault::ServerError if is_object => ("500 Internal Server Error", b"boom".to_vec()),
            Fault::NotFound(suffix) if path.ends_with(suffix.as_str()) => {
                ("404 Not Found", b"no".to_vec())
            }
            Fault::WrongBytes(suffix, bytes) if path.ends_with(suffix.as_str()) => {
                ("200 OK", bytes.clone())
            }
            Fault::DieAfterObjects(n) if is_object && objects.load(Ordering::SeqCst) >= *n => {
                stop.store(true, Ordering::SeqCst);
                return Ok(());
            }
            _ => match std::fs::read(root.join(path.trim_start_matches('/'))) {
                Ok(data) => ("200 OK", data),
                Err(_) => ("404 Not Found", b"not found".to_vec()),
            },
        };
        if is_object && status.starts_with("200") {
            objects.fetch_add(1, Ordering::SeqCst);
        }
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
            body.len()
        )?;
        out.write_all(&body)?;
        out.flush()?;
    }
}
