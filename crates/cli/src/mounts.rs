//! Docker's mount flags in the CLI: `-v`, `--mount` and `--tmpfs`; and
//! `--device`, which mounts a host device.

use anyhow::{bail, Result};
use berth_client::types as pb;

/// Parses `-v`: `/ctr` (anonymous volume), `name:/ctr[:opts]` (named
/// volume) or `/host:/ctr[:opts]` (bind mount, made when missing).
pub fn parse_volume(spec: &str) -> Result<pb::Mount> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => bail!(
            "invalid volume specification {spec:?}: use [name|/host/path:]/container/path[:ro]"
        ),
    };
    if !target.starts_with('/') {
        bail!("invalid volume specification {spec:?}: the container path must be absolute");
    }
    let mut m = pb::Mount {
        target: target.into(),
        ..Default::default()
    };
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "readonly" => m.read_only = true,
            "rw" | "z" | "Z" | "rprivate" | "private" | "rslave" | "slave" | "rshared"
            | "shared" | "consistent" | "cached" | "delegated" => {}
            "nocopy" => m.options.push("nocopy".into()),
            other => bail!("invalid volume option {other:?} in {spec:?}: use ro, rw or nocopy"),
        }
    }
    if source.starts_with('/') || source.starts_with('.') {
        m.r#type = "bind".into();
        m.source = absolute(source)?;
        m.create_host_path = true;
    } else {
        if source.contains('/') {
            bail!("{source:?} includes invalid characters for a local volume name; if you intended to pass a host directory, use an absolute path");
        }
        m.r#type = "volume".into();
        m.source = source.into();
    }
    Ok(m)
}

/// A bind source as an absolute path: `./dir` and `../dir` are taken from
/// the current folder, as Docker does.
fn absolute(source: &str) -> Result<String> {
    if source.starts_with('/') {
        return Ok(source.to_string());
    }
    let cwd = std::env::current_dir().map_err(|e| {
        anyhow::anyhow!("cannot resolve {source:?} against the current folder: {e}")
    })?;
    let mut path = cwd;
    for part in std::path::Path::new(source).components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                path.pop();
            }
            other => path.push(other),
        }
    }
    Ok(path.display().to_string())
}

/// Parses `--mount type=…,source=…,target=…[,readonly]…`.
pub fn parse_mount(spec: &str) -> Result<pb::Mount> {
    let mut m = pb::Mount {
        r#type: "volume".into(),
        ..Default::default()
    };
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        let flag = || -> Result<bool> {
            match v {
                "" | "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => bail!("invalid value {v:?} for {k} in --mount {spec:?}: use true or false"),
            }
        };
        match k {
            "type" => m.r#type = v.into(),
            "source" | "src" => m.source = v.into(),
            "target" | "destination" | "dst" => m.target = v.into(),
            "readonly" | "ro" => m.read_only = flag()?,
            "volume-nocopy" => {
                if flag()? {
                    m.options.push("nocopy".into())
                }
            }
            "tmpfs-size" => m.options.push(format!("size={v}")),
            "tmpfs-mode" => m.options.push(format!("mode={v}")),
            "bind-propagation" | "consistency" | "bind-recursive" => {}
            _ => bail!("unexpected key {k:?} in --mount {spec:?}: use type, source, target, readonly, volume-nocopy, tmpfs-size or tmpfs-mode"),
        }
    }
    if m.target.is_empty() {
        bail!("invalid --mount {spec:?}: target is required");
    }
    if !["bind", "volume", "tmpfs"].contains(&m.r#type.as_str()) {
        bail!("invalid --mount {spec:?}: type is bind, volume or tmpfs");
    }
    if m.r#type == "bind" && m.source.is_empty() {
        bail!("invalid --mount {spec:?}: a bind mount needs a source");
    }
    Ok(m)
}

/// Parses `--tmpfs /path[:size=…,mode=…]`.
pub fn parse_tmpfs(spec: &str) -> Result<pb::Mount> {
    let (target, opts) = spec.split_once(':').unwrap_or((spec, ""));
    Ok(pb::Mount {
        r#type: "tmpfs".into(),
        target: target.into(),
        options: opts
            .split(',')
            .filter(|o| !o.is_empty() && !["rw", "noexec", "nosuid", "nodev"].contains(o))
            .map(String::from)
            .collect(),
        ..Default::default()
    })
}

/// True for Docker's device permissions: some of `r`, `w`, `m`, once each.
fn device_mode(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 3
        && p.chars().all(|c| "rwm".contains(c))
        && p.chars().enumerate().all(|(i, c)| !p[i + 1..].contains(c))
}

/// Parses `--device HOST[:CONTAINER][:PERMS]` as Docker's CLI does (a
/// second field that reads as permissions is the permissions).
pub fn parse_device(spec: &str) -> Result<pb::DeviceMapping> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, m] if device_mode(m) => (*h, *h, *m),
        [h, c] => (*h, *c, "rwm"),
        [h, c, m] => {
            if !device_mode(m) {
                bail!("invalid argument {spec:?} for \"--device\" flag: bad mode specified: {m}");
            }
            (*h, *c, *m)
        }
        _ => bail!("invalid argument {spec:?} for \"--device\" flag: bad format for path: {spec}"),
    };
    if host.is_empty() {
        bail!("invalid argument {spec:?} for \"--device\" flag: bad format for path: {spec}");
    }
    if !container.starts_with('/') {
        bail!(
            "invalid argument {spec:?} for \"--device\" flag: {container} is not an absolute path"
        );
    }
    Ok(pb::DeviceMapping {
        path_on_host: host.to_string(),
        path_in_container: container.to_string(),
        cgroup_permissions: perms.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_as_docker_reads_them() {
        let d = |s: &str| {
            let m = parse_device(s).unwrap();
            (m.path_on_host, m.path_in_container, m.cgroup_permissions)
        };
        let own = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(d("/dev/fuse"), own("/dev/fuse", "/dev/fuse", "rwm"));
        assert_eq!(d("/dev/fuse:r"), own("/dev/fuse", "/dev/fuse", "r"));
        assert_eq!(d("/dev/sda:/dev/xvdc"), own("/dev/sda", "/dev/xvdc", "rwm"));
        assert_eq!(
            d("/dev/sda:/dev/xvdc:rw"),
            own("/dev/sda", "/dev/xvdc", "rw")
        );
        let e = parse_device("/dev/sda:/dev/x:rwz").unwrap_err().to_string();
        assert!(e.contains("bad mode specified: rwz"), "{e}");
        assert!(parse_device("/dev/sda:x").is_err());
        assert!(parse_device("a:b:c:d").is_err());
    }

    #[test]
    fn volume_flags_read_as_dockers() {
        let m = parse_volume("/srv/app:/app:ro").unwrap();
        assert_eq!(
            (m.r#type.as_str(), m.read_only, m.create_host_path),
            ("bind", true, true)
        );
        let m = parse_volume("data:/var/lib/data").unwrap();
        assert_eq!((m.r#type.as_str(), m.source.as_str()), ("volume", "data"));
        assert_eq!(parse_volume("/cache").unwrap().source, "");
        for bad in ["rel:dir", "a/b:/y", "a:/b:bogus", "a:b:c:d"] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
        // A relative bind source is taken from the current folder.
        let cwd = std::env::current_dir().unwrap();
        let m = parse_volume("./x:/y").unwrap();
        assert_eq!(
            (m.r#type.as_str(), m.source.clone()),
            ("bind", cwd.join("x").display().to_string())
        );
        let m = parse_volume("../x:/y").unwrap();
        assert_eq!(
            m.source,
            cwd.parent().unwrap().join("x").display().to_string()
        );
        let m = parse_mount("type=bind,src=/h,dst=/c,readonly").unwrap();
        assert_eq!(
            (
                m.source.as_str(),
                m.target.as_str(),
                m.read_only,
                m.create_host_path
            ),
            ("/h", "/c", true, false)
        );
        let m = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m").unwrap();
        assert_eq!(m.options, ["size=1m"]);
        for bad in [
            "type=bind,target=/c",
            "source=x",
            "type=nfs,target=/x",
            "target=/x,color=red",
        ] {
            assert!(parse_mount(bad).is_err(), "{bad}");
        }
    }
}
