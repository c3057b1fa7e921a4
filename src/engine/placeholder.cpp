// stage engine
