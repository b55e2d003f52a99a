#!/usr/bin/env bash
# Packages Berth Desktop with Tauri's bundler (the @tauri-apps/cli that
# ui/'s lockfile pins; nothing is downloaded from elsewhere):
#   scripts/bundle-desktop.sh           builds and bundles a release: on Linux
#                                       the .deb (the app, berth, berth-agent,
#                                       the berth-agent service, the group
#                                       berth); on macOS Berth.app and a .dmg;
#                                       on Windows an .msi (the last two with
#                                       the VM image as a resource).
#   scripts/bundle-desktop.sh --debug   bundles the debug build as it is
#                                       (what the README's test command
#                                       installs and tests).
# Each platform's bundle settings are in src-tauri/bundle/<os>.json, merged
# over tauri.conf.json here only: `cargo build` never needs the programs
# and image a bundle carries. Bundles land in <target>/<profile>/bundle/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
[[ $target == /* ]] || target=$repo/$target
debug=false
[[ ${1:-} == --debug ]] && debug=true
triple=$(rustc -vV | sed -n 's/^host: //p')
case "$(uname -s)" in
  Linux) os=linux; exe=; programs=(berth berth-agent) ;;
  Darwin) os=macos; exe=; programs=(berth) ;;
  *) os=windows; exe=.exe; programs=(berth) ;;
esac

if [[ ! -x ui/node_modules/.bin/tauri ]]; then
  (cd ui && npm ci --no-audit --no-fund)
fi
# Where each program comes from: the debug build as it is, or a release.
declare -A from
if $debug; then
  profile=debug
  for p in berth-desktop "${programs[@]}"; do from[$p]=$target/debug; done
else
  profile=release
  (cd ui && npm run --silent build)
  # The app and the CLI with the lighter `desktop` profile; the engine as
  # the VM and the benchmarks have it (fat LTO, its hot code gathered).
  cargo build --locked --profile desktop -p berth-desktop -p berth-cli
  from[berth-desktop]=$target/desktop
  from[berth]=$target/desktop
  if [[ $os == linux ]]; then
    cargo build --locked --release -p berth-agent
    from[berth-agent]=$target/release
  else
    scripts/build-vm-image.sh "$target/vm-image"
  fi
fi
for p in berth-desktop "${programs[@]}"; do
  if [[ ! -f ${from[$p]}/$p$exe ]]; then
    echo "bundle-desktop: ${from[$p]}/$p$exe is not built: run cargo build --workspace first" >&2
    exit 1
  fi
done
# Tauri's bundler takes the app from <target>/<profile>/.
if [[ ${from[berth-desktop]} != "$target/$profile" ]]; then
  mkdir -p "$target/$profile"
  cp "${from[berth-desktop]}/berth-desktop$exe" "$target/$profile/"
fi
# ... and each program the bundle carries as src-tauri/binaries/NAME-TRIPLE.
mkdir -p src-tauri/binaries
for p in "${programs[@]}"; do
  cp "${from[$p]}/$p$exe" "src-tauri/binaries/$p-$triple$exe"
done
flags=(--ci --no-sign --no-binary-patching --config "bundle/$os.json")
$debug && flags+=(--debug)
rm -rf "$target/$profile/bundle"
(cd src-tauri && "$repo/ui/node_modules/.bin/tauri" bundle "${flags[@]}")
find "$target/$profile/bundle" -maxdepth 2 \( -name '*.deb' -o -name '*.dmg' -o -name '*.msi' -o -name '*.app' \) |
  sed 's/^/bundled: /'
