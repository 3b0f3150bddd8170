//! `google.rpc.Status` and `google.rpc.RetryInfo`, the error shapes OTLP
//! uses: the body of an HTTP error response, and the details of a gRPC
//! status that tells the client when to retry.

use prost::Message;

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    /// Type URL.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// Encoded message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    /// gRPC code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Message for developers.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Details such as RetryInfo.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    /// Seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct RetryInfo {
    /// How long the client should wait.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// The type URL of [`RetryInfo`].
pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// A status with a RetryInfo detail asking to retry after `seconds`.
pub fn with_retry_info(code: i32, message: &str, seconds: i64) -> RpcStatus {
    RpcStatus {
        code,
        message: message.to_string(),
        details: vec![Any {
            type_url: RETRY_INFO_TYPE.into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration { seconds, nanos: 0 }),
            }
            .encode_to_vec(),
        }],
    }
}

/// The OTLP/JSON form of a status (`{"code":3,"message":"..."}`).
pub fn to_json(status: &RpcStatus) -> Vec<u8> {
    serde_json::json!({ "code": status.code, "message": status.message })
        .to_string()
        .into_bytes()
}
