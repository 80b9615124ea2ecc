import GatewayCore

extension GCRA {
    /// How many calls sent at these instants one exact GCRA admits: the most any limiter could admit of a load as it
    /// was really offered (a loaded machine makes clients late).
    func admissions(of sent: [ContinuousClock.Instant]) -> Int {
        let all = sent.sorted()
        guard let origin = all.first else { return 0 }
        var tat: Int64?
        var admitted = 0
        for instant in all {
            let offset = instant - origin
            let now = offset.components.seconds * 1_000_000_000 + offset.components.attoseconds / 1_000_000_000
            if earliest(tat: tat) <= now {
                tat = advance(tat: tat, at: now)
                admitted += 1
            }
        }
        return admitted
    }
}
