//! The outside systems `weir demo --example users|iot` talks to when there is no internet: a
//! users API shaped like randomuser.me's (paged JSON over HTTP on loopback) and MQTT sensors
//! publishing readings to a broker. Both are deterministic for a seed.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const FIRST: &[&str] = &[
    "Ava", "Noah", "Mia", "Liam", "Emma", "Lucas", "Sofia", "Mateo", "Aiko", "Kenji", "Amara",
    "Tariq", "Ines", "Jonas", "Freya", "Omar", "Lea", "Ravi", "Nora", "Elias",
];
const LAST: &[&str] = &[
    "Garcia", "Müller", "Rossi", "Dubois", "Silva", "Kowalski", "Jensen", "Tanaka", "Okafor",
    "Novak", "Haddad", "Larsen", "Moreau", "Costa", "Schmidt", "Ivanova", "Nakamura", "Byrne",
];
const PLACES: &[(&str, &str, &str)] = &[
    ("Lyon", "Auvergne-Rhône-Alpes", "France"),
    ("Porto", "Porto", "Portugal"),
    ("Leipzig", "Sachsen", "Germany"),
    ("Aarhus", "Midtjylland", "Denmark"),
    ("Osaka", "Osaka", "Japan"),
    ("Lagos", "Lagos", "Nigeria"),
    ("Kraków", "Małopolskie", "Poland"),
    ("Valencia", "Valencia", "Spain"),
    ("Cork", "Munster", "Ireland"),
    ("Turin", "Piedmont", "Italy"),
];

/// One randomuser-shaped user; `n` numbers it within the seed's stream.
pub fn user(seed: u64, n: u64) -> Value {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let first = FIRST[r.gen_range(0..FIRST.len())];
    let last = LAST[r.gen_range(0..LAST.len())];
    let (city, state, country) = PLACES[r.gen_range(0..PLACES.len())];
    let age: i64 = r.gen_range(18..80);
    let uuid = format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        r.r#gen::<u32>(),
        r.r#gen::<u16>(),
        r.gen_range(0..0x1000u16),
        0x8000 | r.gen_range(0..0x4000u16),
        r.r#gen::<u64>() & 0xffff_ffff_ffff
    );
    let username = format!("{}{}{}", first.to_lowercase(), last.len(), n % 1000);
    json!({
        "gender": if r.gen_bool(0.5) { "female" } else { "male" },
        "name": {"title": if r.gen_bool(0.5) { "Ms" } else { "Mr" }, "first": first, "last": last},
        "location": {
            "street": {"number": r.gen_range(1..300), "name": "Main Street"},
            "city": city, "state": state, "country": country,
            "postcode": r.gen_range(10000..99999),
        },
        "email": format!("{}.{}@example.com", first.to_lowercase(), username),
        "login": {"uuid": uuid, "username": username},
        "dob": {"date": format!("{}-{:02}-{:02}T08:30:00.000Z", 2026 - age, r.gen_range(1..13), r.gen_range(1..29)), "age": age},
        "registered": {"date": "2020-05-01T10:00:00.000Z", "age": 6},
        "phone": format!("0{}-{:07}", r.gen_range(1..9), r.gen_range(0..9_999_999)),
        "nat": &country[..2].to_uppercase(),
    })
}

/// A users API on `addr` (port 0 picks one): `GET /api/?results=N&page=P&seed=S` answers
/// `{"results": [...], "info": {"seed", "results", "page", "version"}}` like randomuser.me.
/// Each call of a page without `seed` returns new users (a counter), as the real API does.
pub fn start_users_api(addr: &str, stop: Arc<AtomicBool>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let counter = Arc::new(AtomicU64::new(0));
    std::thread::Builder::new()
        .name("weir-sim-users".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let c = counter.clone();
                        std::thread::spawn(move || {
                            let _ = answer(s, &c);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
    Ok(local)
}

fn answer(mut s: TcpStream, counter: &AtomicU64) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |k: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(a, _)| *a == k)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let (status, body) = if path.trim_end_matches('/') == "/api" {
        let results = param("results").unwrap_or(1).clamp(1, 5000);
        let page = param("page").unwrap_or(1).max(1);
        let seed = param("seed").unwrap_or_else(|| counter.fetch_add(1, Ordering::Relaxed));
        let users: Vec<Value> = (0..results)
            .map(|i| user(seed, (page - 1) * results + i))
            .collect();
        (
            "200 OK",
            json!({"results": users, "info": {"seed": seed.to_string(), "results": results, "page": page, "version": "1.4"}}),
        )
    } else {
        ("404 Not Found", json!({"error": "try /api/?results=10"}))
    };
    let body = body.to_string();
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()
}

/// Publishes sensor readings to `sensors/<device>/reading` on the broker at `url`
/// (`mqtt://host:port`) at QoS 1, `rate` readings per second over `devices` devices, until
/// `stop`. About one reading in fifty is out of range (a faulty sensor), for the example's
/// expectation to catch. Readings are stamped on a clock that starts now and runs `speed`
/// times faster than real time, so that event-time windows close within a short demo.
#[allow(clippy::too_many_arguments)]
pub fn publish_readings(
    url: &str,
    devices: u32,
    rate: u32,
    speed: u32,
    seed: u64,
    stop: Arc<AtomicBool>,
    published: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let u = url::Url::parse(url).map_err(|e| anyhow::anyhow!("WEIR_MQTT_URL `{url}`: {e}"))?;
    let host = u.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = u.port().unwrap_or(1883);
    let mut opts = rumqttc::MqttOptions::new(format!("weir-sim-{seed}"), host, port);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut conn) = rumqttc::Client::new(opts, 1024);
    let s2 = stop.clone();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            if s2.load(Ordering::Relaxed) {
                break;
            }
            if ev.is_err() {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    });
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let gap = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let (start, started) = (chrono::Utc::now(), std::time::Instant::now());
    while !stop.load(Ordering::Relaxed) {
        let simulated = started.elapsed() * speed.max(1);
        let ts = start + chrono::Duration::from_std(simulated).unwrap_or_default();
        let d = r.gen_range(0..devices.max(1));
        let faulty = r.gen_range(0..50) == 0;
        let temperature = if faulty {
            r.gen_range(150.0..400.0)
        } else {
            18.0 + f64::from(d % 7) + r.gen_range(-2.0..2.0)
        };
        let reading = json!({
            "device_id": format!("dev-{d:03}"),
            "ts": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "temperature": (temperature * 100.0_f64).round() / 100.0,
            "humidity": (r.gen_range(30.0..70.0_f64) * 10.0).round() / 10.0,
        });
        client
            .publish(
                format!("sensors/dev-{d:03}/reading"),
                rumqttc::QoS::AtLeastOnce,
                false,
                reading.to_string(),
            )
            .map_err(|e| anyhow::anyhow!("publishing to {url}: {e}"))?;
        published.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(gap);
    }
    let _ = client.disconnect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_deterministic_per_seed_and_randomuser_shaped() {
        assert_eq!(user(1, 5), user(1, 5));
        assert_ne!(user(1, 5), user(1, 6));
        let u = user(3, 0);
        for path in [
            "/name/first",
            "/login/uuid",
            "/dob/age",
            "/location/city",
            "/email",
        ] {
            assert!(u.pointer(path).is_some(), "{path} missing in {u}");
        }
    }

    #[test]
    fn the_api_pages_like_randomuser() {
        let stop = Arc::new(AtomicBool::new(false));
        let addr = start_users_api("127.0.0.1:0", stop.clone()).unwrap();
        let get = |q: &str| -> Value {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(s, "GET /api/?{q} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            std::io::Read::read_to_string(&mut s, &mut out).unwrap();
            serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap()
        };
        let p1 = get("results=3&page=1&seed=9");
        let p2 = get("results=3&page=2&seed=9");
        assert_eq!(p1["results"].as_array().unwrap().len(), 3);
        assert_eq!(p1["results"][0], user(9, 0));
        assert_eq!(p2["results"][0], user(9, 3));
        assert_eq!(p1["info"]["page"], 1);
        stop.store(true, Ordering::Relaxed);
    }
}
