version = "f2.0.1v1.10.1-fake"
