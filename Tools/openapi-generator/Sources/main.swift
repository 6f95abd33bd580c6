// Anchor target: the product that matters is swift-openapi-generator.
