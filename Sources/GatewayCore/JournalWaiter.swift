/// What a call journal tells when one of a call's records is durable or failed: the call's own object, so a
/// record costs neither a future nor a closure. Told on the event loop the record was made on.
public protocol JournalWaiter: AnyObject {
    /// The record of `phase` was written (`.success`) or could not be (`.failure`).
    func journaled(_ result: Result<Void, any Error>, phase: CallRecord.Phase)
}
