// Thin C surface for librdkafka (Debian librdkafka-dev), including the mock
// cluster API used for the embedded broker.
#ifndef TASK_SCHEDULER_CRDKAFKA_SHIM_H
#define TASK_SCHEDULER_CRDKAFKA_SHIM_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

// rd_kafka_producev is variadic and cannot be called from Swift; this shim
// produces one message with an optional key and headers (ownership of
// `headers` passes to librdkafka on success, as rd_kafka_producev documents).
static inline rd_kafka_resp_err_t crdkafka_produce(
    rd_kafka_t *rk, const char *topic, int32_t partition,
    const void *payload, size_t len, const void *key, size_t keylen,
    rd_kafka_headers_t *headers, void *opaque) {
    return rd_kafka_producev(
        rk,
        RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE((void *)payload, len),
        RD_KAFKA_V_KEY(key, keylen),
        RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_OPAQUE(opaque),
        RD_KAFKA_V_END);
}

#endif
