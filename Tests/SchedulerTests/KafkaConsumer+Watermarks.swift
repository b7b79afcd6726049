import CRdKafka
@_spi(Benchmark) @testable import Scheduler

/// Test-only consumer calls.
extension KafkaConsumer {
    /// Low and high watermark of a partition, asked of its leader (blocking).
    func queryWatermarks(topic: String, partition: Int32, timeoutMs: Int) throws -> (low: Int64, high: Int64) {
        var low: Int64 = -1
        var high: Int64 = -1
        let err = rd_kafka_query_watermark_offsets(handle, topic, partition, &low, &high, Int32(timeoutMs))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "watermarks of \(topic)[\(partition)]") }
        return (low, high)
    }
}
