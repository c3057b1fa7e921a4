// stage models
