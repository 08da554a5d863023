package registry

// StatsKeyOf names an endpoint's hourly stats hash, for the tests that measure it in Redis.
var StatsKeyOf = statsKey
