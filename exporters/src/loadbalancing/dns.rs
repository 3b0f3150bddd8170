//! Looking a name's addresses up: through the system resolver
//! (`getaddrinfo`, as Go's resolver reads `/etc/resolv.conf`), or, with the
//! Tern-only `resolver.dns.nameserver`, by asking one DNS server directly
//! for the A and AAAA records over UDP (a query of one question each, the
//! answers read for their addresses; CNAME chains the server follows are
//! read through, since their records come with the addresses).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// The addresses `hostname` resolves to, sorted and without duplicates,
/// within `timeout`.
pub async fn lookup(
    hostname: &str,
    nameserver: Option<SocketAddr>,
    timeout: Duration,
) -> io::Result<Vec<IpAddr>> {
    let found = tokio::time::timeout(timeout, async {
        match nameserver {
            None => Ok(tokio::net::lookup_host((hostname, 0))
                .await?
                .map(|a| a.ip())
                .collect::<Vec<_>>()),
            Some(server) => ask(hostname, server).await,
        }
    })
    .await
    .map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("lookup of {hostname} timed out"),
        )
    })??;
    let mut found = found;
    found.sort();
    found.dedup();
    if found.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such host: {hostname}"),
        ));
    }
    Ok(found)
}

/// Asks `server` for the A and AAAA records of `hostname`.
async fn ask(hostname: &str, server: SocketAddr) -> io::Result<Vec<IpAddr>> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    let ids = [fastrand::u16(..), fastrand::u16(..)];
    for (id, qtype) in ids.iter().zip([TYPE_A, TYPE_AAAA]) {
        socket.send(&query(*id, hostname, qtype)?).await?;
    }
    let mut answered = [false; 2];
    let mut out = Vec::new();
    let mut failure = None;
    let mut buf = vec![0u8; 4096];
    while !answered.iter().all(|a| *a) {
        let n = socket.recv(&mut buf).await?;
        let Some(reply) = buf.get(..n) else { continue };
        let Some(which) = reply
            .get(..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .and_then(|id| ids.iter().position(|x| *x == id))
        else {
            continue;
        };
        if answered[which] {
            continue;
        }
        answered[which] = true;
        match answers(reply) {
            Ok(found) => out.extend(found),
            Err(e) => failure = Some(e),
        }
    }
    // As Go's resolver: one of the two queries failing is no failure when
    // the other found addresses.
    match failure {
        Some(e) if out.is_empty() => Err(e),
        _ => Ok(out),
    }
}

fn bad(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// A recursive query for `qtype` records of `name`.
fn query(id: u16, name: &str, qtype: u16) -> io::Result<Vec<u8>> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..64).contains(l))
            .ok_or_else(|| bad("a label of the name is empty or longer than 63 bytes"))?;
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    Ok(q)
}

/// Skips a (possibly compressed) name at `at`; returns where it ends.
fn skip_name(msg: &[u8], mut at: usize) -> io::Result<usize> {
    loop {
        let len = *msg.get(at).ok_or_else(|| bad("truncated name"))?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => return Ok(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

fn u16_at(msg: &[u8], at: usize) -> io::Result<u16> {
    msg.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| bad("truncated reply"))
}

/// The A and AAAA addresses in the answer section of `msg`; an error for a
/// failed query other than "no such name".
fn answers(msg: &[u8]) -> io::Result<Vec<IpAddr>> {
    let flags = u16_at(msg, 2)?;
    match flags & 0x000f {
        0 | 3 => {}
        rcode => return Err(bad(&format!("the DNS server answered with rcode {rcode}"))),
    }
    let questions = u16_at(msg, 4)?;
    let records = u16_at(msg, 6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(msg, at)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..records {
        at = skip_name(msg, at)?;
        let rtype = u16_at(msg, at)?;
        let len = usize::from(u16_at(msg, at + 8)?);
        let data = msg
            .get(at + 10..at + 10 + len)
            .ok_or_else(|| bad("truncated record"))?;
        match (rtype, data.len()) {
            (TYPE_A, 4) => out.push(IpAddr::from([data[0], data[1], data[2], data[3]])),
            (TYPE_AAAA, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(data);
                out.push(IpAddr::from(b));
            }
            _ => {}
        }
        at += 10 + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_addresses_of_an_answer() {
        let mut msg = query(7, "gw.test", TYPE_A).unwrap();
        msg[2] = 0x81;
        msg[3] = 0x80;
        msg[7] = 2; // two answers
        for ip in [[127, 0, 0, 2], [127, 0, 0, 3]] {
            msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            msg.extend_from_slice(&ip);
        }
        let got = answers(&msg).unwrap();
        assert_eq!(
            got,
            vec![IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3])]
        );
        msg[3] = 0x82; // SERVFAIL
        assert!(answers(&msg).is_err());
    }
}
