// stage profile
