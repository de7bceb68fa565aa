package cvm

// ExposedFragment is exposedFragment, for the external tests.
var ExposedFragment = exposedFragment
