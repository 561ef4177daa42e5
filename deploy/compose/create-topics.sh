#!/bin/sh
# One-off job: create the catalogue's topics with their retention before any service starts
# (services create missing topics too, but without cleanup.policy: directory snapshots must
# be compacted). Idempotent (--if-not-exists).
set -eu
bootstrap=${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}
partitions=${KAFKA_TOPIC_PARTITIONS:-6}
replication=${KAFKA_REPLICATION_FACTOR:-1}
topics=/opt/kafka/bin/kafka-topics.sh

create() {
    "$topics" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$1" \
        --partitions "$partitions" --replication-factor "$replication" \
        --config "cleanup.policy=$2" ${3:+--config "retention.ms=$3"} \
        --config "max.message.bytes=${KAFKA_MAX_MESSAGE_BYTES:-1000000}"
}

grep -v '^#' /topics.conf | while read -r topic policy retention; do
    [ -n "$topic" ] || continue
    create "$topic" "$policy" "${retention:-}"
    create "$topic.dlq" delete 2592000000
done
