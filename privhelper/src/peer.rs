//! Who is on the other end of a Unix socket, as the kernel saw it at connect().

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt};

/// The caller's credentials: uid, primary gid, pid and every group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    /// Primary and supplementary groups (SO_PEERGROUPS), primary first.
    pub groups: Vec<u32>,
}

/// Read the peer's credentials. Fails (and the caller must refuse the connection)
/// when the kernel cannot tell.
pub fn peer_of(sock: &impl AsFd) -> std::io::Result<Peer> {
    let cred = getsockopt(sock, sockopt::PeerCredentials).map_err(std::io::Error::from)?;
    let mut groups = vec![cred.gid()];
    for g in peer_groups(sock)? {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    Ok(Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
        groups,
    })
}

/// SO_PEERGROUPS: the supplementary groups at connect() time (Linux ≥ 4.13).
fn peer_groups(sock: &impl AsFd) -> std::io::Result<Vec<u32>> {
    use std::os::fd::AsRawFd;
    let fd = sock.as_fd().as_raw_fd();
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is a live buffer of `len` bytes; the kernel writes at most
        // `len` bytes and updates `len` to what it wrote (or needs, on ERANGE).
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && n > groups.len() && n <= 65536 {
            groups.resize(n, 0);
            continue;
        }
        return Err(err);
    }
}
