// stage store
