#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft mode) for the tests that need more than
# the in-process kfake broker: replication, min.insync.replicas, a broker
# killed and restarted (internal/embedded/apache_kafka.go runs it).
#
#   scripts/kafka.sh fetch     copy the broker's jars into .deps/kafka/libs/
#   scripts/kafka.sh libs      print that directory (fails if not fetched)
#   scripts/kafka.sh version   print the Kafka version of the fetched jars
#
# fetch resolves scripts/kafka/pom.xml from Maven Central with
# `mvn dependency:copy-dependencies`. Maven checks every downloaded file
# against the .sha1 that Maven Central serves beside it; --strict-checksums
# makes a mismatch fail the fetch (Maven's default only warns), which is the
# integrity check here: no separate checksum list is kept.
#
# fetch is idempotent: it does nothing when .deps/kafka/libs.stamp records
# the sha256 of the current pom.xml, so editing the pom refetches. It copies
# into a temporary directory and renames it into place, so an interrupted
# fetch leaves no half-filled libs/. Java 17 and Maven come from apt when
# missing (run `apt-get update` first on a fresh machine; see shared FACTS).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pom="$root/scripts/kafka/pom.xml"
dest="$root/.deps/kafka"
libs="$dest/libs"
stamp="$dest/libs.stamp"

need_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "kafka.sh: must run as root (or with sudo) to install $*" >&2
    exit 1
  fi
}

ensure_tools() {
  local missing=()
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    need_root apt-get update
    need_root apt-get install -y --no-install-recommends "${missing[@]}"
  fi
}

pom_sum() { sha256sum "$pom" | cut -d' ' -f1; }

fetched() {
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(pom_sum)" ] &&
    compgen -G "$libs/kafka_2.13-*.jar" >/dev/null
}

cmd_fetch() {
  if fetched; then
    touch "$stamp" # newer than kafka.sh, so make does not ask again
    echo "kafka: jars already in .deps/kafka/libs ($(cmd_version))"
    return 0
  fi
  ensure_tools
  mkdir -p "$dest"
  local work
  work=$(mktemp -d "$dest/libs.tmp.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  # -B and style.color: no progress or colour codes in CI logs; -q: errors only.
  mvn -B -q -Dstyle.color=never --strict-checksums -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$work"
  if ! compgen -G "$work/kafka_2.13-*.jar" >/dev/null; then
    echo "kafka.sh: maven copied no kafka_2.13 jar into $work" >&2
    exit 1
  fi
  rm -rf "$libs"
  mv "$work" "$libs"
  pom_sum >"$stamp"
  echo "kafka: $(ls "$libs" | wc -l) jars in .deps/kafka/libs ($(cmd_version))"
}

cmd_libs() {
  if ! compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then
    echo "kafka jars not found in .deps/kafka/libs: run make setup" >&2
    return 1
  fi
  echo "$libs"
}

cmd_version() {
  local jar
  jar=$(compgen -G "$libs/kafka_2.13-*.jar" | head -n1) || {
    echo "kafka jars not found in .deps/kafka/libs: run make setup" >&2
    return 1
  }
  jar=${jar##*/kafka_2.13-}
  echo "apache kafka ${jar%.jar}"
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  libs) cmd_libs ;;
  version) cmd_version ;;
  *)
    echo "usage: $0 fetch|libs|version" >&2
    exit 2
    ;;
esac
