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

// rd_kafka_mock_broker_push_request_error_rtts is variadic too: this shim
// delays the next `count` requests of one type on one mock broker by
// `rtt_ms` without failing them (a slow broker for that request type only).
static inline rd_kafka_resp_err_t crdkafka_mock_delay_requests(
    rd_kafka_mock_cluster_t *cluster, int32_t broker, int16_t api_key, size_t count, int rtt_ms) {
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t i = 0; i < count && !err; i++)
        err = rd_kafka_mock_broker_push_request_error_rtts(cluster, broker, api_key, 1, RD_KAFKA_RESP_ERR_NO_ERROR, rtt_ms);
    return err;
}

/* The next `count` requests of `api_key` to broker `broker` fail with `code`
 * (the variadic rd_kafka_mock_broker_push_request_error_rtts, one at a time). */
static inline rd_kafka_resp_err_t crdkafka_mock_broker_fail_requests(
    rd_kafka_mock_cluster_t *cluster, int32_t broker, int16_t api_key, size_t count, rd_kafka_resp_err_t code) {
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t i = 0; i < count && !err; i++)
        err = rd_kafka_mock_broker_push_request_error_rtts(cluster, broker, api_key, 1, code, 0);
    return err;
}

#endif
